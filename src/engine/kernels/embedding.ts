import { ShapeError, UnsupportedError, VulnLabError } from '../errors.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import { foldWorkgroups } from './layer-grid.ts';

type Buf = GPUBuffer | Binding;

export interface EmbeddingShape {
  /** Tokens. */
  T: number;
  /** Embedding width (n_embd). */
  C: number;
  /** Rows of wte (vocab size). */
  V: number;
  /** Rows of wpe (n_positions); ignored (may be absent or 0) without a position table. */
  P?: number;
}

/**
 * Validates the shape and returns the rows of the position table: P with positions (≥ 1), else 0 (a
 * given P is then only checked to be a count, and ignored).
 */
function checkShape({ T, C, V, P }: EmbeddingShape, positions: boolean): number {
  const counts: [string, number | undefined, number][] = [
    ['T', T, 0],
    ['C', C, 1],
    ['V', V, 1],
  ];
  if (positions || P !== undefined) counts.push(['P', P, positions ? 1 : 0]);
  for (const [name, v, min] of counts) {
    if (v === undefined || !Number.isInteger(v) || v < min)
      throw new ShapeError(`embedding: bad ${name} = ${v}`);
  }
  const rows = positions ? (P as number) : 0;
  if (T * C >= 2 ** 32 || V * C >= 2 ** 32 || rows * C >= 2 ** 32 || V >= 2 ** 31 || rows >= 2 ** 31) {
    throw new UnsupportedError(
      `embedding: shape too large (${T}, ${C}, ${V}, ${rows})`,
      'Choose a smaller model or pack length, or a GPU with larger limits.',
    );
  }
  return rows;
}

/** Whether the position table is given: both of `a` and `b`, or neither (ShapeError otherwise). */
function bothOrNeither(a: unknown, b: unknown, what: string): boolean {
  if ((a === undefined) !== (b === undefined))
    throw new ShapeError(`embedding: give both ${what}, or neither`);
  return a !== undefined;
}

/** Throws a bad-input error unless every id is an integer in [0, rows). */
export function validateIds(ids: ArrayLike<number>, rows: number, what = 'token id'): void {
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= rows) {
      throw new VulnLabError(
        'bad-input',
        `${what} ${id} at position ${t} is outside [0, ${rows}).`,
        'The tokenizer does not match the model (vocab size), or a sequence is longer than n_positions.',
      );
    }
  }
}

/**
 * Forward: X[t] = wte[ids[t]] + wpe[pos[t]] (ids, pos: i32 [T]; out-of-range ids are clamped on the
 * GPU). Without `pos` and `wpe` (both or neither; rotary-position models) X[t] = wte[ids[t]].
 */
export async function embeddingForward(
  ctx: GpuContext,
  buffers: { ids: Buf; pos?: Buf; wte: Buf; wpe?: Buf; x: Buf },
  shape: EmbeddingShape,
): Promise<Dispatch> {
  const { ids, pos, wte, wpe, x } = buffers;
  const positions = bothOrNeither(pos, wpe, 'pos and wpe');
  const P = checkShape(shape, positions);
  const { T, C, V } = shape;
  const pipeline = await ctx.pipeline('embedding', { entryPoint: positions ? 'forward' : 'tokens' });
  const params = ctx.uniform('embedding.params', new Uint32Array([T, C, V, P]));
  return {
    label: positions ? `embedding ${T}x${C}` : `embedding tokens ${T}x${C}`,
    pipeline,
    bindGroup: ctx.bindGroup(
      pipeline,
      positions ? [params, ids, pos as Buf, wte, wpe as Buf, x] : [params, ids, wte, x],
    ),
    workgroups: foldWorkgroups(Math.ceil((T * C) / 256)),
  };
}

/**
 * The scatter index of shaders/embedding.wgsl for `ids` (length T) into a table of `rows` rows:
 * [U, start[0..T], rows[0..T), order[0..T)] (3T + 2 u32), tokens grouped by row in ascending order.
 * Validates the ids (bad-input error).
 */
export function scatterIndex(ids: ArrayLike<number>, rows: number, what = 'token id'): Uint32Array {
  validateIds(ids, rows, what);
  const T = ids.length;
  const order = Array.from({ length: T }, (_, t) => t).sort((a, b) => ids[a] - ids[b] || a - b);
  const index = new Uint32Array(3 * T + 2);
  let U = 0;
  for (let k = 0; k < T; k++) {
    const id = ids[order[k]];
    if (k === 0 || id !== ids[order[k - 1]]) {
      index[1 + U] = k; // start of group U
      index[T + 2 + U] = id;
      U++;
    }
    index[2 * T + 2 + k] = order[k];
  }
  index[0] = U;
  index[1 + U] = T; // end of the last group
  return index;
}

/**
 * Backward of the embedding for full finetuning: dwte[ids[t]] += dX[t], dwpe[pos[t]] += dX[t] (without
 * `dwpe`, only the wte scatter). Always adds (zero the tables with `fill` before the first micro-batch
 * of a step). The token ids change every step: call `setTokens` (CPU sort + one small upload) before
 * running the dispatches; the positions are required with `dwpe` and ignored without it.
 */
export interface EmbeddingBackward {
  dispatches: Dispatch[];
  setTokens(ids: ArrayLike<number>, pos?: ArrayLike<number>): void;
  destroy(): void;
}

export async function embeddingBackward(
  ctx: GpuContext,
  buffers: { dx: Buf; dwte: Buf; dwpe?: Buf },
  shape: EmbeddingShape,
): Promise<EmbeddingBackward> {
  const positions = buffers.dwpe !== undefined;
  const P = checkShape(shape, positions);
  const { T, C, V } = shape;
  const pipeline = await ctx.pipeline('embedding', { entryPoint: 'scatter' });
  const indexBytes = (3 * T + 2) * 4;
  const [wteIndex, wpeIndex] = await Promise.all([
    ctx.storage('embedding.wteIndex', indexBytes),
    positions ? ctx.storage('embedding.wpeIndex', indexBytes) : undefined,
  ]);
  const workgroups = foldWorkgroups(Math.ceil((T * C) / 256));
  const scatter = (index: GPUBuffer, rows: number, table: Buf, name: string): Dispatch => ({
    label: `embedding backward ${name} ${T}x${C}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [
      ctx.uniform('embedding.scatter', new Uint32Array([T, C, rows, 0])),
      index,
      buffers.dx,
      table,
    ]),
    workgroups,
  });
  const dispatches = [scatter(wteIndex, V, buffers.dwte, 'wte')];
  if (wpeIndex && buffers.dwpe) dispatches.push(scatter(wpeIndex, P, buffers.dwpe, 'wpe'));
  return {
    dispatches,
    setTokens(ids, pos) {
      if (wpeIndex) {
        if (ids.length !== T || pos?.length !== T) {
          throw new ShapeError(
            `embedding backward: expected ${T} ids and positions, got ${ids.length}, ${pos?.length ?? 'none'}`,
          );
        }
      } else if (ids.length !== T) {
        throw new ShapeError(`embedding backward: expected ${T} ids, got ${ids.length}`);
      }
      // Validate both before writing either.
      const tokenIndex = scatterIndex(ids, V, 'token id');
      const positionIndex = wpeIndex && pos ? scatterIndex(pos, P, 'position id') : undefined;
      ctx.write(wteIndex, tokenIndex);
      if (wpeIndex && positionIndex) ctx.write(wpeIndex, positionIndex);
    },
    destroy() {
      wteIndex.destroy();
      wpeIndex?.destroy();
    },
  };
}
