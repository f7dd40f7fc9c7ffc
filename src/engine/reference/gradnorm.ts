export interface GradNormRef {
  sumsq: number;
  norm: number;
  scale: number;
  nonFinite: boolean;
}

/** Float64 CPU reference for shaders/gradnorm.wgsl (torch.nn.utils.clip_grad_norm_'s total norm and factor). */
export function gradNormRef(grads: readonly ArrayLike<number>[], maxNorm: number): GradNormRef {
  let sumsq = 0;
  let nonFinite = false;
  for (const g of grads) {
    for (let i = 0; i < g.length; i++) {
      if (Number.isFinite(g[i])) sumsq += g[i] * g[i];
      else nonFinite = true;
    }
  }
  const norm = Math.sqrt(sumsq);
  let scale = maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
  if (nonFinite) scale = 0;
  return { sumsq, norm, scale, nonFinite };
}
