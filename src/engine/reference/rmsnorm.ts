/**
 * Float64 CPU reference for shaders/rmsnorm.wgsl and shaders/rmsnorm_rows.wgsl (Hugging Face
 * LlamaRMSNorm): y = x·rstd·weight, rstd = 1/sqrt(mean(x²) + eps), per row of x [T, C].
 */
export interface RmsNormForwardRef {
  y: Float64Array;
  rstd: Float64Array;
}

export function rmsNormForwardRef(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  T: number,
  C: number,
  eps = 1e-6,
): RmsNormForwardRef {
  const y = new Float64Array(T * C);
  const rstd = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    let q = 0;
    for (let c = 0; c < C; c++) q += x[t * C + c] ** 2;
    const r = 1 / Math.sqrt(q / C + eps);
    rstd[t] = r;
    for (let c = 0; c < C; c++) y[t * C + c] = x[t * C + c] * r * weight[c];
  }
  return { y, rstd };
}

export interface RmsNormBackwardRef {
  dx: Float64Array;
  dweight: Float64Array;
}

/**
 * Gradients of sum(dY ⊙ Y) with respect to X and weight (rstd recomputed in float64):
 * dx = rstd·(g − x̂·mean(g·x̂)), g = dy·weight, x̂ = x·rstd; dweight = Σ_t dy·x̂.
 */
export function rmsNormBackwardRef(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  dy: ArrayLike<number>,
  T: number,
  C: number,
  eps = 1e-6,
): RmsNormBackwardRef {
  const { rstd } = rmsNormForwardRef(x, weight, T, C, eps);
  const dx = new Float64Array(T * C);
  const dweight = new Float64Array(C);
  for (let t = 0; t < T; t++) {
    let sgx = 0;
    for (let c = 0; c < C; c++) {
      const xhat = x[t * C + c] * rstd[t];
      sgx += dy[t * C + c] * weight[c] * xhat;
      dweight[c] += dy[t * C + c] * xhat;
    }
    for (let c = 0; c < C; c++) {
      const xhat = x[t * C + c] * rstd[t];
      dx[t * C + c] = rstd[t] * (dy[t * C + c] * weight[c] - (xhat * sgx) / C);
    }
  }
  return { dx, dweight };
}
