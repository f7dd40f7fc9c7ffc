/** Float64 CPU reference for shaders/matmul.wgsl: C = alpha·op(A)·op(B) + beta·C. */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  c: ArrayLike<number> | undefined,
  M: number,
  N: number,
  K: number,
  { transA = false, transB = true, alpha = 1, beta = 0 } = {},
): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let sum = 0;
      for (let k = 0; k < K; k++) {
        const av = transA ? a[k * M + m] : a[m * K + k];
        const bv = transB ? b[n * K + k] : b[k * N + n];
        sum += av * bv;
      }
      out[m * N + n] = alpha * sum + (beta !== 0 && c ? beta * c[m * N + n] : 0);
    }
  }
  return out;
}
