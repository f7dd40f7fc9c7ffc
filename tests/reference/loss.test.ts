import { describe, expect, it } from 'vitest';
import { crossEntropyRef, focalLossRef, type FocalOptions } from '../../src/engine/reference/loss.ts';
import { Rng } from '../../src/engine/random.ts';

const H = 1e-6;

function fdCheck(f: (z: Float64Array) => number, z: Float64Array, analytic: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < z.length; i++) {
    const s = z[i];
    z[i] = s + H;
    const up = f(z);
    z[i] = s - H;
    const down = f(z);
    z[i] = s;
    worst = Math.max(worst, Math.abs((up - down) / (2 * H) - analytic[i]));
  }
  return worst;
}

describe('focal loss reference', () => {
  const rng = new Rng(5);
  const F = 9;
  const logits = Float64Array.from({ length: 2 * F }, () => 3 * rng.normal());
  const labels = Array.from({ length: F }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const weights = Array.from({ length: F }, (_, i) => (i % 2 ? 3 : 1));

  it('γ = 0, α = null is weighted cross-entropy averaged over functions', () => {
    const { loss } = focalLossRef(logits, labels, weights, { gamma: 0, alpha: null });
    let want = 0;
    for (let i = 0; i < F; i++) {
      const z0 = logits[2 * i];
      const z1 = logits[2 * i + 1];
      const lse = Math.log(Math.exp(z0) + Math.exp(z1));
      want += weights[i] * (lse - (labels[i] ? z1 : z0));
    }
    expect(Math.abs(loss - want / F)).toBeLessThan(1e-14);
  });

  it('γ > 0 down-weights easy examples; α weighs the classes', () => {
    const easy = Float64Array.from([-5, 5]);
    const ce = focalLossRef(easy, [1], [1], { gamma: 0, alpha: null }).loss;
    const fl = focalLossRef(easy, [1], [1], { gamma: 2, alpha: null }).loss;
    expect(fl).toBeLessThan(ce * 1e-3);
    const a = focalLossRef(Float64Array.from([0.3, -0.1]), [1], [1], { gamma: 1, alpha: 0.25 }).loss;
    const b = focalLossRef(Float64Array.from([0.3, -0.1]), [1], [1], { gamma: 1, alpha: null }).loss;
    expect(a / b).toBeCloseTo(0.25, 14);
  });

  const settings: FocalOptions[] = [
    { gamma: 0, alpha: null },
    { gamma: 1, alpha: null },
    { gamma: 2, alpha: 0.25 },
    { gamma: 0.5, alpha: 0.9 },
  ];
  for (const focal of settings) {
    it(`dlogits match finite differences (γ=${focal.gamma}, α=${focal.alpha})`, () => {
      const z = logits.slice();
      const { dlogits } = focalLossRef(z, labels, weights, focal);
      expect(fdCheck((v) => focalLossRef(v, labels, weights, focal).loss, z, dlogits)).toBeLessThan(1e-8);
    });
  }

  it('stays finite for a confidently right prediction with γ < 1', () => {
    const { loss, dlogits } = focalLossRef(Float64Array.from([-40, 40]), [1], [1], {
      gamma: 0.5,
      alpha: null,
    });
    expect(Number.isFinite(loss)).toBe(true);
    expect([...dlogits].every(Number.isFinite)).toBe(true);
  });

  it('rejects labels outside {0, 1}', () => {
    expect(() => focalLossRef(Float64Array.from([0, 0]), [2], [1], { gamma: 1, alpha: null })).toThrow(
      /label 2/,
    );
  });
});

describe('cross-entropy reference', () => {
  it('ignores masked rows and matches finite differences', () => {
    const rng = new Rng(9);
    const V = 7;
    const targets = [3, -1, 0, 6, -1];
    const z = Float64Array.from({ length: targets.length * V }, () => 2 * rng.normal());
    const { loss, dlogits } = crossEntropyRef(z, targets, V);
    expect(fdCheck((v) => crossEntropyRef(v, targets, V).loss, z, dlogits)).toBeLessThan(1e-8);
    for (let j = 0; j < V; j++) expect(dlogits[V + j]).toBe(0);
    let want = 0;
    for (const [t, y] of targets.entries()) {
      if (y < 0) continue;
      let s = 0;
      for (let j = 0; j < V; j++) s += Math.exp(z[t * V + j]);
      want += Math.log(s) - z[t * V + y];
    }
    expect(Math.abs(loss - want / 3)).toBeLessThan(1e-14);
  });

  it('no valid target gives loss 0 and zero gradient (no NaN)', () => {
    const { loss, dlogits } = crossEntropyRef(new Float64Array(6), [-1, -1], 3);
    expect(loss).toBe(0);
    expect([...dlogits].every((v) => v === 0)).toBe(true);
  });
});
