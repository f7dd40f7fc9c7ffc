import type { GeluKind } from '../kernels/gelu.ts';

/**
 * erf in float64 to ~1e-15: erf(x) = 2/√π·e^(−x²)·Σ 2ⁿx^(2n+1)/(1·3·…·(2n+1)), a series of positive
 * terms (no cancellation); |x| > 6 gives ±1 (erfc(6) ≈ 2e-17).
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax > 6) return Math.sign(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; n < 400; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return (Math.sign(x) * 2 * Math.exp(-ax * ax) * sum) / Math.sqrt(Math.PI);
}

const SQRT_2_PI = Math.sqrt(2 / Math.PI);
const KAPPA = 0.044715;

export function geluScalar(x: number, kind: GeluKind): number {
  if (kind === 'gelu') return 0.5 * x * (1 + erf(x / Math.SQRT2));
  return 0.5 * x * (1 + Math.tanh(SQRT_2_PI * (x + KAPPA * x * x * x)));
}

export function geluGradScalar(x: number, kind: GeluKind): number {
  if (kind === 'gelu') {
    const cdf = 0.5 * (1 + erf(x / Math.SQRT2));
    const pdf = Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    return cdf + x * pdf;
  }
  const t = Math.tanh(SQRT_2_PI * (x + KAPPA * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_PI * (1 + 3 * KAPPA * x * x);
}

/** Float64 CPU reference for shaders/gelu.wgsl forward. */
export function geluForwardRef(x: ArrayLike<number>, kind: GeluKind): Float64Array {
  return Float64Array.from(x, (v) => geluScalar(v, kind));
}

/** Backward: dX = dY·gelu'(X). */
export function geluBackwardRef(x: ArrayLike<number>, dy: ArrayLike<number>, kind: GeluKind): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = dy[i] * geluGradScalar(x[i], kind);
  return out;
}
