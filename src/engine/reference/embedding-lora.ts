/**
 * Float64 CPU reference for kernels/embedding-lora.ts (PEFT's lora.Embedding branch, no dropout):
 *   h[t, k] = A[k, ids[t]],  y = s·h·Bᵀ,  s = alpha / r
 *   dB = s·dxᵀ·h,  dh = s·dx·B,  dA[:, v] = Σ_{t: ids[t] = v} dh[t, :]
 */

export interface EmbeddingLoraRefInput {
  /** [T] token ids in [0, V). */
  ids: ArrayLike<number>;
  /** [r, V] (lora_embedding_A). */
  a: ArrayLike<number>;
  /** [D, r] (lora_embedding_B). */
  b: ArrayLike<number>;
  T: number;
  D: number;
  V: number;
  rank: number;
  alpha: number;
}

export interface EmbeddingLoraRefResult {
  /** The branch's output s·h·Bᵀ [T, D] (to be added to wte[ids] + wpe[pos]). */
  y: Float64Array;
  /** [T, r]. */
  h: Float64Array;
  /** [r, V]: zero in the columns of ids not in the batch. */
  dA: Float64Array;
  /** [D, r]. */
  dB: Float64Array;
  /** [T, r], the gradient of h. */
  dh: Float64Array;
}

/** Forward and backward of the embedding LoRA branch for output gradient dx [T, D]. */
export function embeddingLoraRef(
  input: EmbeddingLoraRefInput,
  dx: ArrayLike<number>,
): EmbeddingLoraRefResult {
  const { ids, a, b, T, D, V, rank: R, alpha } = input;
  const s = alpha / R;
  const h = new Float64Array(T * R);
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < R; k++) h[t * R + k] = a[k * V + ids[t]];
  }
  const y = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    for (let d = 0; d < D; d++) {
      let sum = 0;
      for (let k = 0; k < R; k++) sum += h[t * R + k] * b[d * R + k];
      y[t * D + d] = s * sum;
    }
  }
  const dB = new Float64Array(D * R);
  const dh = new Float64Array(T * R);
  for (let t = 0; t < T; t++) {
    for (let d = 0; d < D; d++) {
      const g = dx[t * D + d];
      for (let k = 0; k < R; k++) {
        dB[d * R + k] += s * g * h[t * R + k];
        dh[t * R + k] += s * g * b[d * R + k];
      }
    }
  }
  const dA = new Float64Array(R * V);
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < R; k++) dA[k * V + ids[t]] += dh[t * R + k];
  }
  return { y, h, dA, dB, dh };
}
