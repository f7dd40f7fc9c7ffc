/**
 * Float64 CPU reference for shaders/embedding.wgsl forward: X[t] = wte[ids[t]] + wpe[pos[t]], or
 * X[t] = wte[ids[t]] with neither `pos` nor `wpe` (rotary-position models; both or neither).
 */
export function embeddingForwardRef(
  ids: ArrayLike<number>,
  pos: ArrayLike<number> | undefined,
  wte: ArrayLike<number>,
  wpe: ArrayLike<number> | undefined,
  C: number,
): Float64Array {
  if ((pos === undefined) !== (wpe === undefined))
    throw new Error('embeddingForwardRef: pos and wpe, or neither');
  const T = ids.length;
  const x = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < C; c++) {
      x[t * C + c] = wte[ids[t] * C + c] + (pos && wpe ? wpe[pos[t] * C + c] : 0);
    }
  }
  return x;
}

/** Backward: table0 + Σ_t (row of token t) += dX[t] for one table of `rows` rows. */
export function embeddingScatterRef(
  ids: ArrayLike<number>,
  dx: ArrayLike<number>,
  rows: number,
  C: number,
  table0?: ArrayLike<number>,
): Float64Array {
  const out = table0 ? Float64Array.from(table0) : new Float64Array(rows * C);
  for (let t = 0; t < ids.length; t++) {
    for (let c = 0; c < C; c++) out[ids[t] * C + c] += dx[t * C + c];
  }
  return out;
}
