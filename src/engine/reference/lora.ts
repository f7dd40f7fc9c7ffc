/**
 * Float64 CPU reference for kernels/lora.ts and shaders/dropout.wgsl. The mask hash is written out
 * again here (not imported), so a test comparing masks checks the WGSL and the TypeScript agree.
 */

function lowbias32(x: number): number {
  let h = x >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h = (h ^ (h >>> 15)) >>> 0;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** 1 where element i is kept for (seed, site, step) at dropout p, else 0. */
export function dropoutMaskRef(n: number, seed: number, site: number, step: number, p: number): Uint8Array {
  const k = lowbias32(step + 0x9e3779b9);
  const j = lowbias32((site ^ k) + 0x85ebca6b);
  const key = lowbias32((seed ^ j) + 0xc2b2ae35);
  const threshold = Math.min(0xffffffff, Math.round(p * 2 ** 32));
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    mask[i] = lowbias32(lowbias32((i ^ key) >>> 0) + key) >= threshold ? 1 : 0;
  }
  return mask;
}

export interface LoraRefInput {
  x: ArrayLike<number>; // [T, in]
  a: ArrayLike<number>; // [r, in]
  b: ArrayLike<number>; // [out, r]
  T: number;
  inFeatures: number;
  outFeatures: number;
  rank: number;
  alpha: number;
  dropout: number;
  /** Keep-mask [T·in] (required when dropout > 0). */
  mask?: Uint8Array;
}

export interface LoraRefResult {
  /** The branch's output s·drop(x)·Aᵀ·Bᵀ [T, out] (to be added to the base output). */
  y: Float64Array;
  h: Float64Array;
  gradA: Float64Array;
  gradB: Float64Array;
  /** The branch's part of dx [T, in]. */
  dx: Float64Array;
}

/** Forward and backward of the LoRA branch for output gradient dy [T, out]. */
export function loraRef(input: LoraRefInput, dy: ArrayLike<number>): LoraRefResult {
  const { x, a, b, T, inFeatures: I, outFeatures: O, rank: R, alpha, dropout: p, mask } = input;
  const s = alpha / R;
  const scale = 1 / (1 - p);
  const xd = new Float64Array(T * I);
  for (let i = 0; i < T * I; i++) xd[i] = p > 0 ? (mask![i] ? x[i] * scale : 0) : x[i];
  const h = new Float64Array(T * R);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < R; r++) {
      let sum = 0;
      for (let k = 0; k < I; k++) sum += xd[t * I + k] * a[r * I + k];
      h[t * R + r] = sum;
    }
  }
  const y = new Float64Array(T * O);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < O; o++) {
      let sum = 0;
      for (let r = 0; r < R; r++) sum += h[t * R + r] * b[o * R + r];
      y[t * O + o] = s * sum;
    }
  }
  // dB = s·dyᵀ·h; dh = s·dy·B; dA = dhᵀ·xd; dx = drop'(dh·A)
  const gradB = new Float64Array(O * R);
  const dh = new Float64Array(T * R);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < O; o++) {
      const g = dy[t * O + o];
      for (let r = 0; r < R; r++) {
        gradB[o * R + r] += s * g * h[t * R + r];
        dh[t * R + r] += s * g * b[o * R + r];
      }
    }
  }
  const gradA = new Float64Array(R * I);
  const dx = new Float64Array(T * I);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < R; r++) {
      const g = dh[t * R + r];
      for (let k = 0; k < I; k++) {
        gradA[r * I + k] += g * xd[t * I + k];
        dx[t * I + k] += g * a[r * I + k];
      }
    }
  }
  if (p > 0) for (let i = 0; i < T * I; i++) dx[i] = mask![i] ? dx[i] * scale : 0;
  return { y, h, gradA, gradB, dx };
}
