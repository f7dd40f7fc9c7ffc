/** A tensor located inside a checkpoint file, before it is read. */
import type { SourceDtype } from './convert.ts';
import type { ByteSource } from './source.ts';

export interface TensorEntry {
  /** Hugging Face name (e.g. `transformer.h.0.attn.c_attn.weight`). */
  name: string;
  /** Hugging Face shape (row-major, `[out, in]` for linears). */
  shape: number[];
  dtype: SourceDtype;
  source: ByteSource;
  /** Absolute byte offset of the tensor's data in `source`. */
  offset: number;
  byteLength: number;
}

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** [rows, cols] view of a shape: the last dimension is the row length; scalars and 1-D are one row. */
export function rowsCols(shape: readonly number[]): [number, number] {
  if (shape.length === 0) return [1, 1];
  const cols = shape[shape.length - 1];
  return [cols === 0 ? 0 : numel(shape) / cols, cols];
}

/** Reads a tensor's raw bytes (source dtype). */
export function readTensorBytes(t: TensorEntry): Promise<Uint8Array> {
  return t.source.read(t.offset, t.byteLength);
}
