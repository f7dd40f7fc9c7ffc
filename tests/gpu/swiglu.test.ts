import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/engine/errors.ts';
import { foldWorkgroups, MAX_WORKGROUPS_PER_DIM } from '../../src/engine/kernels/layer-grid.ts';
import { swigluBackward, swigluForward } from '../../src/engine/kernels/swiglu.ts';
import {
  siluGradScalar,
  siluScalar,
  swigluBackwardRef,
  swigluForwardRef,
} from '../../src/engine/reference/swiglu.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// silu(z)·up is a handful of f32 ops around exp (WGSL allows exp 3 + 2|x| ulp): error ≲ 1e-7 of
// max(1, |z|)·max(1, |up|) per element; the backward adds the σ·(1 + z·(1 − σ)) term and one more
// product (lavapipe measured 1.2e-7 forward, 1.5e-7 backward). Where exp loses its ulps matters little:
// for z ≪ 0 σ ≈ e^z scales the error down with the value, for z ≫ 0 σ = 1/(1 + e^−|z|) barely sees it.
// The tolerances leave a 3–6× margin and still reject a wrong formula or an overflow to Inf/NaN.
const FORWARD_TOLERANCE = 5e-7;
const BACKWARD_TOLERANCE = 1e-6;

/** Extremes: 0, tiny, the zero of silu' (z ≈ −1.2785), where e^|z| overflows f32 (±88.8), ±100, huge. */
const SPECIALS = [
  0, -0, 1e-30, -1e-30, 1e-8, -1e-8, 0.5, -0.5, -1.2785, 3, -3, 10, -10, 20, -20, 88, -88, 89, -89, 100, -100,
  1e4, -1e4, 1e30, -1e30, 3e38, -3e38,
];

function inputs(seed: number, n: number) {
  const rng = new Rng(seed);
  const gate = randomArray(rng, n, 6);
  gate.set(SPECIALS.slice(0, Math.min(n, SPECIALS.length)));
  // up and dh within ±1 where the gate is extreme, so h = silu(gate)·up and the gradients stay finite.
  const up = randomArray(rng, n, 1);
  const dh = randomArray(rng, n, 1);
  return { gate, up, dh };
}

/** Largest |got − want| / (max(1, |g|)·max(1, |u|)·max(1, |d|)) per element; NaN/Inf fail (return NaN). */
function worst(got: Float32Array, want: Float64Array, ...scales: ArrayLike<number>[]): number {
  let max = 0;
  for (let i = 0; i < got.length; i++) {
    let scale = 1;
    for (const s of scales) scale *= Math.max(1, Math.abs(s[i]));
    const err = Math.abs(got[i] - want[i]) / scale;
    if (!Number.isFinite(got[i]) && got[i] !== want[i]) return NaN;
    if (!(err <= max)) max = err;
  }
  return max;
}

async function runCase(n: number, seed: number, workgroups?: [number, number, number]) {
  const ctx = gpu();
  const { gate, up, dh } = inputs(seed, n);
  const pad = 7; // NaN sentinels past n: nothing may be written there
  const nan = () => new Float32Array(n + pad).fill(NaN);
  const buf = {
    gate: await ctx.storageFrom('gate', gate),
    up: await ctx.storageFrom('up', up),
    h: await ctx.storageFrom('h', nan()),
    dh: await ctx.storageFrom('dh', dh),
    dgate: await ctx.storageFrom('dgate', nan()),
    dup: await ctx.storageFrom('dup', nan()),
  };
  const shape = { T: 1, I: n };
  const dispatches = [await swigluForward(ctx, buf, shape), await swigluBackward(ctx, buf, shape)];
  await ctx.run(workgroups ? dispatches.map((d) => ({ ...d, workgroups })) : dispatches);
  const got = {
    h: await ctx.readF32(buf.h),
    dgate: await ctx.readF32(buf.dgate),
    dup: await ctx.readF32(buf.dup),
  };
  for (const b of Object.values(buf)) b.destroy();
  const h = swigluForwardRef(gate, up);
  const { dgate, dup } = swigluBackwardRef(gate, up, dh);
  return {
    got,
    h: worst(got.h.subarray(0, n), h, gate, up),
    dgate: worst(got.dgate.subarray(0, n), dgate, up, dh),
    dup: worst(got.dup.subarray(0, n), dup, gate, dh),
    untouched: [got.h, got.dgate, got.dup].every((v) => v.subarray(n).every(Number.isNaN)),
  };
}

describe('swiglu on the real adapter', () => {
  // Counts not multiples of the 256-thread workgroup (1, 27 = the specials alone, 255, 257, 1000) and
  // one that is (512).
  for (const n of [1, 27, 255, 257, 512, 1000]) {
    it(`forward and backward match the float64 reference, n=${n}`, async () => {
      const err = await runCase(n, n);
      expect(err.h).toBeLessThan(FORWARD_TOLERANCE);
      expect(Math.max(err.dgate, err.dup)).toBeLessThan(BACKWARD_TOLERANCE);
      expect(err.untouched).toBe(true);
    });
  }

  it('extreme gates give the limits, never Inf or NaN', async () => {
    const n = SPECIALS.length;
    const { got } = await runCase(n, 5);
    const { gate, up, dh } = inputs(5, n);
    for (let i = 0; i < n; i++) {
      const z = gate[i];
      for (const v of [got.h[i], got.dgate[i], got.dup[i]]) expect(Number.isFinite(v), `z=${z}`).toBe(true);
      if (Math.abs(z) < 100) continue;
      // silu(z) → z (z ≫ 0) or 0 (z ≪ 0; e^−100 ≈ 4e-44 is an f32 denormal, which a GPU may flush), and
      // silu'(z) → 1 or 0.
      if (z > 0) {
        expect(got.h[i], `h at z=${z}`).toBe(Math.fround(z * up[i]));
        expect(got.dgate[i], `dgate at z=${z}`).toBe(Math.fround(dh[i] * up[i]));
      } else {
        expect(Math.abs(got.h[i]), `h at z=${z}`).toBeLessThan(1e-40);
        expect(Math.abs(got.dgate[i]), `dgate at z=${z}`).toBeLessThan(1e-38);
      }
    }
  });

  it('workgroups folded into a y/z grid each handle their own elements once', async () => {
    // 1000 elements = 4 workgroups of 256, folded 2 wide (2×2), and 5 elements over a 3×2 grid of which
    // all but the first return: as for counts past 65535·256.
    for (const [n, wg] of [
      [1000, foldWorkgroups(4, 2)],
      [5, foldWorkgroups(5, 2)],
    ] as const) {
      const err = await runCase(n, 17, wg);
      expect(err.h).toBeLessThan(FORWARD_TOLERANCE);
      expect(Math.max(err.dgate, err.dup)).toBeLessThan(BACKWARD_TOLERANCE);
      expect(err.untouched).toBe(true);
    }
  });

  it('a count past 65535 workgroups is folded and computed in full', async () => {
    const ctx = gpu();
    const n = MAX_WORKGROUPS_PER_DIM * 256 + 300; // 16.8M elements: 65537 workgroups
    const shape = { T: 1, I: n };
    const gate = new Float32Array(n);
    for (let i = 0; i < n; i++) gate[i] = ((i % 4001) - 2000) / 100; // [−20, 20], every 4001 elements
    const up = new Float32Array(n).fill(1);
    const buf = {
      gate: await ctx.storageFrom('gate', gate),
      up: await ctx.storageFrom('up', up),
      h: await ctx.storageFrom('h', new Float32Array(n).fill(NaN)),
    };
    const dispatch = await swigluForward(ctx, buf, shape);
    expect(dispatch.workgroups).toEqual([32769, 2, 1]);
    await ctx.run([dispatch]);
    const h = await ctx.readF32(buf.h);
    for (const b of Object.values(buf)) b.destroy();
    let max = 0;
    for (let i = 0; i < n; i++) {
      const err = Math.abs(h[i] - siluScalar(gate[i])) / Math.max(1, Math.abs(gate[i]));
      if (!(err <= max)) max = err; // a NaN (element never written) fails
    }
    expect(max).toBeLessThan(FORWARD_TOLERANCE);
  });

  it('rejects bad shapes and short buffers with a ShapeError', async () => {
    const ctx = gpu();
    const b = await ctx.storage('b', 64); // 16 floats
    const bufs = { gate: b, up: b, h: b };
    for (const shape of [
      { T: 1, I: 0 },
      { T: -1, I: 4 },
      { T: 1, I: 2.5 },
      { T: 2 ** 16, I: 2 ** 16 },
      { T: 2, I: 9 }, // 18 floats > 16
    ]) {
      await expect(swigluForward(ctx, bufs, shape), JSON.stringify(shape)).rejects.toBeInstanceOf(ShapeError);
    }
    await expect(
      swigluBackward(ctx, { ...bufs, dh: b, dgate: b, dup: { buffer: b, offset: 16 } }, { T: 4, I: 4 }),
    ).rejects.toBeInstanceOf(ShapeError);
    await expect(swigluForward(ctx, bufs, { T: 4, I: 4 })).resolves.toBeDefined();
    b.destroy();
  });
});

/** Central finite differences of L = Σ dh ⊙ silu(gate)·up in float64 against the analytic backward. */
describe('swiglu float64 reference', () => {
  it('backward matches finite differences (gate over [−30, 30], up and dh random)', () => {
    const n = 200;
    const rng = new Rng(3);
    const gate = Float64Array.from({ length: n }, (_, i) => -30 + (60 * i) / (n - 1));
    const up = Float64Array.from(randomArray(rng, n, 2));
    const dh = Float64Array.from(randomArray(rng, n, 2));
    const { dgate, dup } = swigluBackwardRef(gate, up, dh);
    const h = 1e-6;
    const loss = (g: number, u: number, d: number) => d * siluScalar(g) * u;
    for (let i = 0; i < n; i++) {
      // Elementwise: L's dependence on gate[i], up[i] is through h[i] alone.
      const numGate = (loss(gate[i] + h, up[i], dh[i]) - loss(gate[i] - h, up[i], dh[i])) / (2 * h);
      const numUp = (loss(gate[i], up[i] + h, dh[i]) - loss(gate[i], up[i] - h, dh[i])) / (2 * h);
      // Truncation ~h²·|silu'''| and rounding ~1e-16·|L|/h ≈ 1e-9 at |z| = 30.
      expect(dgate[i]).toBeCloseTo(numGate, 7);
      expect(dup[i]).toBeCloseTo(numUp, 7);
    }
  });

  it('the whole-array forward matches finite differences of its own sum', () => {
    const rng = new Rng(4);
    const gate = Float64Array.from(randomArray(rng, 16, 4));
    const up = Float64Array.from(randomArray(rng, 16));
    const dh = Float64Array.from(randomArray(rng, 16));
    const L = () => swigluForwardRef(gate, up).reduce((s, v, i) => s + v * dh[i], 0);
    const grads = swigluBackwardRef(gate, up, dh);
    const numeric = (v: Float64Array, i: number) => {
      const keep = v[i];
      v[i] = keep + 1e-6;
      const plus = L();
      v[i] = keep - 1e-6;
      const minus = L();
      v[i] = keep;
      return (plus - minus) / 2e-6;
    };
    for (let i = 0; i < 16; i++) {
      expect(grads.dgate[i]).toBeCloseTo(numeric(gate, i), 7);
      expect(grads.dup[i]).toBeCloseTo(numeric(up, i), 7);
    }
  });

  it('is safe and exact at the extremes', () => {
    for (const z of [-1e308, -1000, -100, 100, 1000, 1e308]) {
      expect(Number.isFinite(siluScalar(z)) && Number.isFinite(siluGradScalar(z))).toBe(true);
    }
    expect(siluScalar(1000)).toBe(1000);
    expect(Math.abs(siluScalar(-1000))).toBe(0);
    expect(siluGradScalar(1000)).toBe(1);
    expect(Math.abs(siluGradScalar(-1000))).toBe(0);
    expect(siluScalar(0)).toBe(0);
    expect(siluGradScalar(0)).toBe(0.5);
    // silu'(z) = 0 at z ≈ −1.27846 (silu's minimum).
    expect(Math.abs(siluGradScalar(-1.278464542761074))).toBeLessThan(1e-12);
  });
});
