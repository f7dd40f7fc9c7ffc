import { describe, expect, it } from 'vitest';
import { layerNormBackwardRef, layerNormForwardRef } from '../../src/engine/reference/layernorm.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';

/** Central finite differences of L = Σ dY ⊙ LayerNorm(X) in float64 against the analytic backward. */
describe('layernorm float64 reference', () => {
  for (const [T, C] of [
    [1, 1],
    [2, 5],
    [3, 17],
  ]) {
    it(`backward matches finite differences at ${T}x${C}`, () => {
      const rng = new Rng(T * 31 + C);
      const x = Float64Array.from(randomArray(rng, T * C, 2));
      const gamma = Float64Array.from(randomArray(rng, C));
      const beta = Float64Array.from(randomArray(rng, C));
      const dy = Float64Array.from(randomArray(rng, T * C));
      const eps = 1e-5;
      const loss = (xx: Float64Array, g: Float64Array, b: Float64Array): number =>
        layerNormForwardRef(xx, g, b, T, C, eps).y.reduce((s, v, i) => s + v * dy[i], 0);
      const grads = layerNormBackwardRef(x, gamma, dy, T, C, eps);
      const h = 1e-6;
      const numeric = (v: Float64Array, i: number, f: () => number): number => {
        const keep = v[i];
        v[i] = keep + h;
        const plus = f();
        v[i] = keep - h;
        const minus = f();
        v[i] = keep;
        return (plus - minus) / (2 * h);
      };
      const f = (): number => loss(x, gamma, beta);
      // Central differences in float64 with h = 1e-6: truncation ~h² and rounding ~1e-16/h ≈ 1e-10.
      for (let i = 0; i < T * C; i++) expect(grads.dx[i]).toBeCloseTo(numeric(x, i, f), 6);
      for (let c = 0; c < C; c++) {
        expect(grads.dgamma[c]).toBeCloseTo(numeric(gamma, c, f), 6);
        expect(grads.dbeta[c]).toBeCloseTo(numeric(beta, c, f), 6);
      }
    });
  }

  it('forward rows have mean beta and the right spread when gamma = 1', () => {
    const C = 8;
    const x = Float64Array.from(randomArray(new Rng(1), C, 5));
    const { y } = layerNormForwardRef(x, new Float64Array(C).fill(1), new Float64Array(C), 1, C, 0);
    expect(y.reduce((s, v) => s + v, 0)).toBeCloseTo(0, 12);
    expect(y.reduce((s, v) => s + v * v, 0) / C).toBeCloseTo(1, 12);
  });
});
