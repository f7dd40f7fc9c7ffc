import { decodeWeight, type WeightFormat } from '../quant.ts';
import { matmulRef } from './matmul.ts';

/**
 * Float64 CPU references for kernels/linear.ts. The stored weight decodes exactly to f32 values
 * (every format is a subset of f32), so the reference is an exact float64 matmul on those values.
 */
export interface WeightRef {
  format: WeightFormat;
  rows: number;
  cols: number;
  bytes: Uint8Array;
}

/** y[T, out] = alpha·x[T, in]·Wᵀ + beta·y0. */
export function linearForwardRef(
  x: ArrayLike<number>,
  w: WeightRef,
  T: number,
  { alpha = 1, beta = 0, y0 }: { alpha?: number; beta?: number; y0?: ArrayLike<number> } = {},
): Float64Array {
  const values = decodeWeight(w.format, w.rows, w.cols, w.bytes);
  return matmulRef(x, values, y0, T, w.rows, w.cols, { transB: true, alpha, beta });
}

/** dx[T, in] = alpha·dy[T, out]·W + beta·dx0. */
export function linearBackwardInputRef(
  dy: ArrayLike<number>,
  w: WeightRef,
  T: number,
  { alpha = 1, beta = 0, dx0 }: { alpha?: number; beta?: number; dx0?: ArrayLike<number> } = {},
): Float64Array {
  const values = decodeWeight(w.format, w.rows, w.cols, w.bytes);
  return matmulRef(dy, values, dx0, T, w.cols, w.rows, { transB: false, alpha, beta });
}
