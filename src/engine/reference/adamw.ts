/** Float64 CPU reference for shaders/adamw.wgsl: one torch.optim.AdamW step, in place on p, m, v. */
export function adamwRef(
  p: Float64Array,
  grad: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  {
    step,
    lr,
    beta1 = 0.9,
    beta2 = 0.999,
    eps = 1e-8,
    weightDecay = 0.01,
    clipScale = 1,
  }: {
    step: number;
    lr: number;
    beta1?: number;
    beta2?: number;
    eps?: number;
    weightDecay?: number;
    clipScale?: number;
  },
): void {
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  for (let i = 0; i < p.length; i++) {
    const g = grad[i] * clipScale;
    p[i] *= 1 - lr * weightDecay;
    m[i] = beta1 * m[i] + (1 - beta1) * g;
    v[i] = beta2 * v[i] + (1 - beta2) * g * g;
    p[i] -= ((lr / bc1) * m[i]) / (Math.sqrt(v[i] / bc2) + eps);
  }
}
