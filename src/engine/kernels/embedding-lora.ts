import { ShapeError, UnsupportedError } from '../errors.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import { fill } from './add.ts';
import { scatterIndex, validateIds } from './embedding.ts';
import { foldWorkgroups } from './layer-grid.ts';
import { matmul } from './matmul.ts';

/*
 * LoRA on the token embedding (PEFT's lora.Embedding), with A [r, V] (lora_embedding_A), B [D, r]
 * (lora_embedding_B), both f32 and trainable, s = alpha / r and no dropout on this branch (as PEFT):
 *   h[t, k] = A[k, ids[t]]        [T, r]   (a column of A per token, saved for backward)
 *   x      += s·h·Bᵀ              [T, D]   (x already holds wte[ids] + wpe[pos])
 * backward, given dx [T, D]:
 *   dB (+)= s·dxᵀ·h               [D, r]
 *   dh   = s·dx·B                 [T, r]
 *   dA[:, v] (+)= Σ_{t: ids[t] = v} dh[t, :]   (scatter into columns of A)
 * The gather and the scatter are shaders/embedding_lora.wgsl (the scatter sorted on the CPU as the
 * embedding's, so it is bitwise reproducible); the matmuls are the shared f32 matmul (r is small).
 * PEFT initializes A to zeros, so the branch starts at exactly zero (x unchanged, dB = 0).
 */

type Buf = GPUBuffer | Binding;

export interface EmbeddingLoraShape {
  /** Tokens of the step. */
  T: number;
  /** Embedding width (n_embd). */
  D: number;
  /** Vocab size: columns of A. */
  V: number;
  rank: number;
  /** LoRA alpha; the branch is scaled by alpha / rank. */
  alpha: number;
}

export interface EmbeddingLoraBuffers {
  /** i32 [T] token ids (the embedding's own ids buffer). */
  ids: Buf;
  /** [r, V] and [D, r], f32. */
  a: Buf;
  b: Buf;
  /** [T, D], already holding wte[ids] + wpe[pos]; the branch is added to it. */
  x: Buf;
  /** [T, r] scratch written by the forward and read by the backward. */
  h: Buf;
  /** [T, D] gradient of x (backward only, as gradA, gradB and dh). */
  dx?: Buf;
  /** [r, V] and [D, r] gradients of A and B. */
  gradA?: Buf;
  gradB?: Buf;
  /** [T, r] scratch. */
  dh?: Buf;
}

export interface EmbeddingLoraOptions {
  /** gradA/gradB += (gradient accumulation) instead of =. Default false. */
  accumulate?: boolean;
}

export interface PreparedEmbeddingLora {
  /** Gathers h, then x += s·h·Bᵀ (after the embedding's forward). */
  forward: Dispatch[];
  /** dB, dh, then the scatter into dA; empty without dx and gradient buffers (evaluation). */
  backward: Dispatch[];
  /**
   * The step's token ids (the same as in the ids buffer): validated (bad-input error), and sorted
   * into the scatter index for the backward (one small upload). Call before running the backward.
   */
  setTokens(ids: ArrayLike<number>): void;
  destroy(): void;
}

function checkShape({ T, D, V, rank, alpha }: EmbeddingLoraShape): void {
  for (const [name, v] of Object.entries({ T, D, V, rank })) {
    if (!Number.isInteger(v) || v < 1) throw new ShapeError(`embedding LoRA: bad ${name} = ${v}`);
  }
  if (!Number.isFinite(alpha)) throw new ShapeError(`embedding LoRA: bad alpha = ${alpha}`);
  // The shader indexes with u32 (T·r, r·V elements) and clamps ids as i32.
  if (
    T * D >= 2 ** 32 ||
    T * rank >= 2 ** 32 ||
    rank * V >= 2 ** 32 ||
    V >= 2 ** 31 ||
    3 * T + 2 >= 2 ** 32
  ) {
    throw new UnsupportedError(
      `embedding LoRA: shape too large (T ${T}, D ${D}, V ${V}, r ${rank})`,
      'Choose a smaller model, rank or pack length.',
    );
  }
}

/** Prepares the LoRA branch of the token embedding: forward, backward and the per-step token index. */
export async function prepareEmbeddingLora(
  ctx: GpuContext,
  buffers: EmbeddingLoraBuffers,
  shape: EmbeddingLoraShape,
  options: EmbeddingLoraOptions = {},
): Promise<PreparedEmbeddingLora> {
  checkShape(shape);
  const { T, D, V, rank: r } = shape;
  const s = shape.alpha / r;
  const { accumulate = false } = options;
  const { ids, a, b, x, h, dx, gradA, gradB, dh } = buffers;
  const params = ctx.uniform('embedding_lora.params', new Uint32Array([T, r, V, 0]));
  const workgroups = foldWorkgroups(Math.ceil((T * r) / 256));

  const gather = await ctx.pipeline('embedding_lora', { entryPoint: 'gather' });
  const forward: Dispatch[] = [
    {
      label: `embedding LoRA gather ${T}x${r}`,
      pipeline: gather,
      bindGroup: ctx.bindGroup(gather, [params, ids, a, h]),
      workgroups,
    },
    await matmul(ctx, h, b, x, { M: T, N: D, K: r, transB: true, alpha: s, beta: 1 }),
  ];

  const given = [dx, gradA, gradB, dh].filter((buffer) => buffer !== undefined).length;
  // Some but not all backward buffers is a wiring mistake, not an evaluation setup.
  if (given !== 0 && given !== 4)
    throw new ShapeError('embedding LoRA: the backward needs dx, gradA, gradB and dh together');

  const backward: Dispatch[] = [];
  let index: GPUBuffer | undefined;
  if (dx && gradA && gradB && dh) {
    const beta = accumulate ? 1 : 0;
    index = await ctx.storage('embedding_lora.index', (3 * T + 2) * 4);
    const scatter = await ctx.pipeline('embedding_lora', { entryPoint: 'scatter' });
    backward.push(
      await matmul(ctx, dx, h, gradB, { M: D, N: r, K: T, transA: true, transB: false, alpha: s, beta }),
      await matmul(ctx, dx, b, dh, { M: T, N: r, K: D, transB: false, alpha: s }),
    );
    // The scatter only adds to the columns of this step's ids; the others must read 0 when not accumulating.
    if (!accumulate) backward.push(await fill(ctx, gradA, r * V));
    backward.push({
      label: `embedding LoRA scatter ${T}x${r}`,
      pipeline: scatter,
      bindGroup: ctx.bindGroup(scatter, [params, index, dh, gradA]),
      workgroups,
    });
  }

  return {
    forward,
    backward,
    setTokens(tokens) {
      if (tokens.length !== T)
        throw new ShapeError(`embedding LoRA: expected ${T} token ids, got ${tokens.length}`);
      if (index) ctx.write(index, scatterIndex(tokens, V, 'token id'));
      else validateIds(tokens, V, 'token id');
    },
    destroy() {
      index?.destroy();
      params.destroy();
    },
  };
}
