/** Float64 CPU reference for shaders/bias.wgsl forward: Y + b broadcast over the T rows of [T, C]. */
export function biasForwardRef(
  y: ArrayLike<number>,
  b: ArrayLike<number>,
  T: number,
  C: number,
): Float64Array {
  const out = new Float64Array(T * C);
  for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) out[t * C + c] = y[t * C + c] + b[c];
  return out;
}

/** Backward: column sums of dY [T, C], plus `db0` when accumulating. */
export function biasBackwardRef(
  dy: ArrayLike<number>,
  T: number,
  C: number,
  db0?: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let sum = db0 ? db0[c] : 0;
    for (let t = 0; t < T; t++) sum += dy[t * C + c];
    out[c] = sum;
  }
  return out;
}
