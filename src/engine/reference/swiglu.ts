/**
 * Float64 CPU reference for shaders/swiglu.wgsl: h = silu(gate)·up, silu(z) = z·σ(z);
 * dgate = dh·up·silu'(gate), dup = dh·silu(gate), silu'(z) = σ(z)·(1 + z·(1 − σ(z))).
 */

/** (σ(z), 1 − σ(z)) from e^−|z|, which never overflows (σ(−1000) is 0, not 1/∞ after an overflow). */
export function sigmoidPair(z: number): [number, number] {
  const e = Math.exp(-Math.abs(z));
  const r = 1 / (1 + e);
  return z >= 0 ? [r, e * r] : [e * r, r];
}

export function siluScalar(z: number): number {
  return z * sigmoidPair(z)[0];
}

export function siluGradScalar(z: number): number {
  const [s, oneMinus] = sigmoidPair(z);
  return s * (1 + z * oneMinus);
}

/** h = silu(gate)·up, elementwise. */
export function swigluForwardRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  const h = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) h[i] = siluScalar(gate[i]) * up[i];
  return h;
}

export interface SwiGluBackwardRef {
  dgate: Float64Array;
  dup: Float64Array;
}

/** Gradients of sum(dh ⊙ h) with respect to gate and up. */
export function swigluBackwardRef(
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
  dh: ArrayLike<number>,
): SwiGluBackwardRef {
  const dgate = new Float64Array(gate.length);
  const dup = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    dgate[i] = dh[i] * up[i] * siluGradScalar(gate[i]);
    dup[i] = dh[i] * siluScalar(gate[i]);
  }
  return { dgate, dup };
}
