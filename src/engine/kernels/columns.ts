/**
 * Column copy between a compact [T, width] buffer and the column slice [offset, offset + width) of a
 * wider [T, rowStride] one (shaders/columns.wgsl), so that separate q/k/v projections (Llama) can
 * write one fused per-token row [q | k | v] that the attention kernel reads, and their gradients be
 * read back out:
 *   placeColumns: dst[t·rowStride + offset + j] = src[t·width + j]   (other columns of dst untouched)
 *   takeColumns:  dst[t·width + j] = src[t·rowStride + offset + j]
 * src and dst must be different buffers. Exact (a copy). Float64 reference: reference/columns.ts.
 */
import { ShapeError } from '../errors.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import { foldWorkgroups } from './layer-grid.ts';

const WG = 256; // shaders/columns.wgsl

type Buf = GPUBuffer | Binding;

export interface ColumnsShape {
  /** Rows (tokens). */
  T: number;
  /** Columns copied per row: the row length of the compact buffer. */
  width: number;
  /** Row length of the wide buffer. */
  rowStride: number;
  /** First column of the slice in the wide buffer (offset + width ≤ rowStride). */
  offset: number;
}

/** Bytes a binding exposes: a Binding's size, else what its buffer holds past its offset. */
function bytes(b: Buf): number {
  if ('buffer' in b) return b.size ?? b.buffer.size - (b.offset ?? 0);
  return b.size;
}

function prepare(
  ctx: GpuContext,
  op: 'place' | 'take',
  { src, dst }: { src: Buf; dst: Buf },
  shape: ColumnsShape,
): GPUBuffer {
  const { T, width, rowStride, offset } = shape;
  const what = `columns ${op} T=${T} w=${width} @${offset}/${rowStride}`;
  const counts = { T, width, rowStride, offset };
  for (const [name, v] of Object.entries(counts)) {
    if (!Number.isInteger(v) || v < (name === 'width' || name === 'rowStride' ? 1 : 0) || v >= 2 ** 32)
      throw new ShapeError(`${what}: bad ${name} = ${v}`);
  }
  if (offset + width > rowStride) throw new ShapeError(`${what}: offset + width exceeds rowStride`);
  if (T * rowStride >= 2 ** 32) throw new ShapeError(`${what}: T·rowStride ≥ 2^32`);
  // A short buffer would not fail validation (out-of-bounds accesses are clamped): catch it here.
  const compact = T * width * 4;
  const wide = T === 0 ? 0 : ((T - 1) * rowStride + offset + width) * 4;
  const need = op === 'place' ? { src: compact, dst: wide } : { src: wide, dst: compact };
  for (const [name, b] of Object.entries({ src, dst })) {
    const have = bytes(b);
    const want = need[name as 'src' | 'dst'];
    if (have < want) throw new ShapeError(`${what}: ${name} holds ${have} bytes, needs ${want}`);
  }
  return ctx.uniform('columns.params', new Uint32Array([T, width, rowStride, offset]));
}

async function columns(
  ctx: GpuContext,
  op: 'place' | 'take',
  buffers: { src: Buf; dst: Buf },
  shape: ColumnsShape,
): Promise<Dispatch> {
  const params = prepare(ctx, op, buffers, shape);
  const pipeline = await ctx.pipeline('columns', { entryPoint: op });
  const { T, width, rowStride, offset } = shape;
  return {
    label: `columns ${op} T=${T} w=${width} @${offset}/${rowStride}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params, buffers.src, buffers.dst]),
    workgroups: foldWorkgroups(Math.ceil((T * width) / WG)),
  };
}

/** dst[t·rowStride + offset + j] = src[t·width + j] (src compact [T, width]; dst wide [T, rowStride]). */
export function placeColumns(
  ctx: GpuContext,
  buffers: { src: Buf; dst: Buf },
  shape: ColumnsShape,
): Promise<Dispatch> {
  return columns(ctx, 'place', buffers, shape);
}

/** dst[t·width + j] = src[t·rowStride + offset + j] (src wide [T, rowStride]; dst compact [T, width]). */
export function takeColumns(
  ctx: GpuContext,
  buffers: { src: Buf; dst: Buf },
  shape: ColumnsShape,
): Promise<Dispatch> {
  return columns(ctx, 'take', buffers, shape);
}
