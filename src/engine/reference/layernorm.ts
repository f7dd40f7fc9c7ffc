/** Float64 CPU reference for shaders/layernorm.wgsl and shaders/layernorm_rows.wgsl (torch.nn.LayerNorm, biased variance). */
export interface LayerNormForwardRef {
  y: Float64Array;
  mean: Float64Array;
  rstd: Float64Array;
}

export function layerNormForwardRef(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  T: number,
  C: number,
  eps = 1e-5,
): LayerNormForwardRef {
  const y = new Float64Array(T * C);
  const mean = new Float64Array(T);
  const rstd = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += x[t * C + c];
    const m = s / C;
    let q = 0;
    for (let c = 0; c < C; c++) q += (x[t * C + c] - m) ** 2;
    const r = 1 / Math.sqrt(q / C + eps);
    mean[t] = m;
    rstd[t] = r;
    for (let c = 0; c < C; c++) y[t * C + c] = (x[t * C + c] - m) * r * gamma[c] + beta[c];
  }
  return { y, mean, rstd };
}

export interface LayerNormBackwardRef {
  dx: Float64Array;
  dgamma: Float64Array;
  dbeta: Float64Array;
}

/** Gradients of sum(dY ⊙ Y) with respect to X, gamma, beta (statistics recomputed in float64). */
export function layerNormBackwardRef(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  dy: ArrayLike<number>,
  T: number,
  C: number,
  eps = 1e-5,
): LayerNormBackwardRef {
  const { mean, rstd } = layerNormForwardRef(x, gamma, new Float64Array(C), T, C, eps);
  const dx = new Float64Array(T * C);
  const dgamma = new Float64Array(C);
  const dbeta = new Float64Array(C);
  for (let t = 0; t < T; t++) {
    let sg = 0;
    let sgx = 0;
    for (let c = 0; c < C; c++) {
      const xhat = (x[t * C + c] - mean[t]) * rstd[t];
      const g = dy[t * C + c] * gamma[c];
      sg += g;
      sgx += g * xhat;
      dgamma[c] += dy[t * C + c] * xhat;
      dbeta[c] += dy[t * C + c];
    }
    for (let c = 0; c < C; c++) {
      const xhat = (x[t * C + c] - mean[t]) * rstd[t];
      const g = dy[t * C + c] * gamma[c];
      dx[t * C + c] = rstd[t] * (g - sg / C - (xhat * sgx) / C);
    }
  }
  return { dx, dgamma, dbeta };
}
