/**
 * Float64 CPU reference for shaders/columns.wgsl: copies between a compact [T, width] array and the
 * column slice [offset, offset + width) of a wide [T, rowStride] one.
 */
export interface ColumnsRefShape {
  T: number;
  width: number;
  rowStride: number;
  offset: number;
}

/** dst0 (wide, copied) with dst[t·rowStride + offset + j] = src[t·width + j]; other entries kept. */
export function placeColumnsRef(
  src: ArrayLike<number>,
  dst0: ArrayLike<number>,
  { T, width, rowStride, offset }: ColumnsRefShape,
): Float64Array {
  const out = Float64Array.from(dst0);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < width; j++) out[t * rowStride + offset + j] = src[t * width + j];
  }
  return out;
}

/** The compact [T, width] array dst[t·width + j] = src[t·rowStride + offset + j]. */
export function takeColumnsRef(
  src: ArrayLike<number>,
  { T, width, rowStride, offset }: ColumnsRefShape,
): Float64Array {
  const out = new Float64Array(T * width);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < width; j++) out[t * width + j] = src[t * rowStride + offset + j];
  }
  return out;
}
