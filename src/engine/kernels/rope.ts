/**
 * Rotary position embedding (shaders/rope.wgsl; math and layouts in src/engine/reference/rope.ts), in
 * place on the fused qkv buffer: the forward rotates the Q and K heads of each token's q/k/v row
 * before attention reads it, the backward rotates their gradients back (R(−a)) before the projections'
 * backward. In place because nothing needs the unrotated Q/K afterwards (the op is linear: its
 * backward needs only the positions) and it saves a [T, row] buffer. The Llama family's blocks use it
 * (model/train-step.ts); GPT-BigCode has learned positions instead.
 */
import { ShapeError, UnsupportedError } from '../errors.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import { checkRopeShape, ropeInvFreq, type RopeOptions, type RopeShape } from '../reference/rope.ts';
import { foldWorkgroups } from './layer-grid.ts';

export {
  checkRopeShape,
  ropeQkvLayout,
  type QkvLayout,
  type QkvLayoutKind,
  type RopeOptions,
  type RopeShape,
} from '../reference/rope.ts';

type Buf = GPUBuffer | Binding;

/** The prepared op: run `forward` / `backward` (empty when that buffer was not given) any number of times. */
export interface Rope {
  /** Rotates the Q and K heads of `qkv` in place. */
  forward: Dispatch[];
  /** Rotates the Q and K head gradients of `dQkv` in place by −a (the transpose); dV untouched. */
  backward: Dispatch[];
  /** New θ / scaling factor (one small upload; the dispatches stay valid). */
  setFrequencies(options: RopeOptions): void;
  /** The inv_freq uploaded last, f32 (1 / (s·θ^(2i/d)) computed in float64, rounded once). */
  readonly invFreq: Float32Array;
  destroy(): void;
}

function bufferBytes(b: Buf): number | undefined {
  if ('buffer' in b) return b.size ?? b.buffer.size - (b.offset ?? 0);
  return b.size;
}

/**
 * Prepares the rope dispatches for `shape` on `qkv` (forward) and/or `dQkv` (backward), with positions
 * from `pos` (i32 [T]: the position id of each token, which restarts at 0 for every function of a
 * packed row; never assumed to be the token index). Throws a ShapeError for an odd head dim, n_kv_head
 * not dividing n_head, heads outside the row or overlapping, buffers too small, or a bad θ / scaling.
 */
export async function prepareRope(
  ctx: GpuContext,
  buffers: { pos: Buf; qkv?: Buf; dQkv?: Buf },
  shape: RopeShape,
  options: RopeOptions,
): Promise<Rope> {
  checkRopeShape(shape);
  const { T, nHead, nKvHead, headDim, layout } = shape;
  const half = headDim / 2;
  const invocations = T * (nHead + nKvHead) * half;
  if (T * layout.rowStride >= 2 ** 32 || invocations >= 2 ** 32) {
    throw new UnsupportedError(
      `rope: shape too large (T = ${T}, row of ${layout.rowStride} floats)`,
      'Choose a smaller pack length.',
    );
  }
  const need: [string, Buf | undefined, number][] = [
    ['pos', buffers.pos, T * 4],
    ['qkv', buffers.qkv, T * layout.rowStride * 4],
    ['dQkv', buffers.dQkv, T * layout.rowStride * 4],
  ];
  for (const [name, b, bytes] of need) {
    const have = b && bufferBytes(b);
    if (have !== undefined && have < bytes) {
      throw new ShapeError(`rope: ${name} holds ${have} bytes, the shape needs ${bytes}`);
    }
  }

  let invFreq = Float32Array.from(ropeInvFreq(headDim, options));
  const freqBuffer = await ctx.storageFrom('rope.invFreq', invFreq);
  const params = ctx.uniform(
    'rope.params',
    new Uint32Array([
      T,
      nHead,
      nKvHead,
      half,
      layout.rowStride,
      layout.qOffset,
      layout.qHeadStride,
      layout.kOffset,
      layout.kHeadStride,
    ]),
  );
  const workgroups = foldWorkgroups(Math.ceil(invocations / 256));
  const prepare = async (entryPoint: 'forward' | 'backward', x: Buf | undefined): Promise<Dispatch[]> => {
    if (!x) return [];
    const pipeline = await ctx.pipeline('rope', { entryPoint });
    return [
      {
        label: `rope ${entryPoint} ${T}x${nHead}/${nKvHead}x${headDim}`,
        pipeline,
        bindGroup: ctx.bindGroup(pipeline, [params, buffers.pos, freqBuffer, x]),
        workgroups,
      },
    ];
  };
  const [forward, backward] = await Promise.all([
    prepare('forward', buffers.qkv),
    prepare('backward', buffers.dQkv),
  ]);
  return {
    forward,
    backward,
    setFrequencies(next) {
      invFreq = Float32Array.from(ropeInvFreq(headDim, next));
      ctx.write(freqBuffer, invFreq);
    },
    get invFreq() {
      return invFreq;
    },
    destroy() {
      freqBuffer.destroy();
      params.destroy();
    },
  };
}
