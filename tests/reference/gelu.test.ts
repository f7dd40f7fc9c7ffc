import { describe, expect, it } from 'vitest';
import { erf, geluGradScalar, geluScalar } from '../../src/engine/reference/gelu.ts';

describe('gelu float64 reference', () => {
  it('erf matches tabulated values to ~1e-15', () => {
    // Values from Abramowitz & Stegun table 7.1 / high-precision tables.
    const table: [number, number][] = [
      [0, 0],
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [3, 0.9999779095030014],
      [4, 0.9999999845827421],
      [-1.5, -0.9661051464753108],
    ];
    for (const [x, want] of table) expect(Math.abs(erf(x) - want)).toBeLessThan(2e-15);
    expect(erf(7)).toBe(1);
    expect(erf(-9)).toBe(-1);
  });

  for (const kind of ['gelu', 'gelu_pytorch_tanh'] as const) {
    it(`${kind}: derivative matches central finite differences`, () => {
      const h = 1e-6;
      for (let x = -6; x <= 6; x += 0.37) {
        const numeric = (geluScalar(x + h, kind) - geluScalar(x - h, kind)) / (2 * h);
        // Truncation ~h²·|gelu'''| and rounding ~1e-16/h: 1e-8 is far below any formula mistake.
        expect(Math.abs(geluGradScalar(x, kind) - numeric)).toBeLessThan(1e-8);
      }
    });
  }

  it('the two forms agree to ~1e-3 (the tanh form is an approximation of the erf form)', () => {
    let max = 0;
    for (let x = -6; x <= 6; x += 0.01)
      max = Math.max(max, Math.abs(geluScalar(x, 'gelu') - geluScalar(x, 'gelu_pytorch_tanh')));
    expect(max).toBeGreaterThan(1e-5);
    expect(max).toBeLessThan(1e-3);
  });
});
