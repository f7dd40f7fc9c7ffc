import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/engine/errors.ts';
import { KERNEL_SETS, type KernelSet } from '../../src/engine/gpu/context.ts';
import type { GpuContext } from '../../src/engine/gpu/index.ts';
import { foldWorkgroups } from '../../src/engine/kernels/layer-grid.ts';
import { rmsNormBackward, rmsNormBackwardParams, rmsNormForward } from '../../src/engine/kernels/rmsnorm.ts';
import { rmsNormBackwardRef, rmsNormForwardRef } from '../../src/engine/reference/rmsnorm.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// Forward: each output is a few f32 ops on a sum of C non-negative terms (no cancellation); error
// ~ (log2(C) + few)·2^-24 relative to the output scale, as layernorm's: 2e-6. dX: the row sum and the
// subtraction g − x̂·mean(g·x̂) (cancelling terms of size ~rstd·|g|) cost a little more: 1e-5.
// dweight: sums of T products, as bias backward: 1e-5.
const FORWARD_TOLERANCE = 2e-6;
const BACKWARD_TOLERANCE = 1e-5;

interface Case {
  T: number;
  C: number;
  eps?: number;
  /** Scale of the random inputs (small values make eps matter). */
  spread?: number;
  /** Rows set to all zeros (rstd = 1/sqrt(eps)). */
  zeroRows?: number[];
}

async function runCase(
  ctx: GpuContext,
  kernels: KernelSet,
  { T, C, eps = 1e-6, spread = 1, zeroRows = [] }: Case,
  seed: number,
) {
  const rng = new Rng(seed);
  const x = randomArray(rng, T * C, spread);
  for (const t of zeroRows) x.fill(0, t * C, (t + 1) * C);
  const weight = randomArray(rng, C).map((v) => v + 1);
  const dy = randomArray(rng, T * C);
  const dxOld = randomArray(rng, T * C);
  const dwOld = randomArray(rng, C);
  const buf = {
    x: await ctx.storageFrom('x', x),
    weight: await ctx.storageFrom('weight', weight),
    y: await ctx.storageFrom('y', new Float32Array(T * C).fill(NaN)),
    rstd: await ctx.storageFrom('rstd', new Float32Array(T).fill(NaN)),
    dy: await ctx.storageFrom('dy', dy),
    dx: await ctx.storageFrom('dx', new Float32Array(T * C).fill(NaN)),
    dxAcc: await ctx.storageFrom('dxAcc', dxOld),
    dweight: await ctx.storageFrom('dweight', new Float32Array(C).fill(NaN)),
    dweightAcc: await ctx.storageFrom('dweightAcc', dwOld),
  };
  const shape = { T, C, eps, kernels };
  const dispatches = [
    await rmsNormForward(ctx, buf, shape),
    await rmsNormBackward(ctx, buf, shape),
    await rmsNormBackward(ctx, { ...buf, dx: buf.dxAcc }, shape, { accumulate: true }),
    await rmsNormBackwardParams(ctx, buf, shape),
    await rmsNormBackwardParams(ctx, { ...buf, dweight: buf.dweightAcc }, shape, { accumulate: true }),
  ];
  await ctx.run(dispatches);
  const fwd = rmsNormForwardRef(x, weight, T, C, eps);
  const bwd = rmsNormBackwardRef(x, weight, dy, T, C, eps);
  const got = {
    y: await ctx.readF32(buf.y),
    rstd: await ctx.readF32(buf.rstd),
    dx: await ctx.readF32(buf.dx),
    dxAcc: await ctx.readF32(buf.dxAcc),
    dweight: await ctx.readF32(buf.dweight),
    dweightAcc: await ctx.readF32(buf.dweightAcc),
  };
  for (const b of Object.values(buf)) b.destroy();
  const plus = (a: Float64Array, b: Float32Array) => a.map((v, i) => v + b[i]);
  return {
    got,
    labels: dispatches.map((d) => d.label),
    inputs: { x, weight, dy },
    y: compare(got.y, fwd.y).maxRel,
    rstd: compare(got.rstd, fwd.rstd).maxRel,
    dx: compare(got.dx, bwd.dx).maxRel,
    dxAcc: compare(got.dxAcc, plus(bwd.dx, dxOld)).maxRel,
    dweight: compare(got.dweight, bwd.dweight).maxRel,
    dweightAcc: compare(got.dweightAcc, plus(bwd.dweight, dwOld)).maxRel,
  };
}

const forwardErr = (e: { y: number; rstd: number }) => Math.max(e.y, e.rstd);
const backwardErr = (e: { dx: number; dxAcc: number; dweight: number; dweightAcc: number }) =>
  Math.max(e.dx, e.dxAcc, e.dweight, e.dweightAcc);

// Ragged widths for both sets, as layernorm's: C = 2, C below the gpu set's 128-thread row workgroup
// (33, 48) and its 32-column dweight block (1, 7), C one short of / one past / a multiple of it (127,
// 129, 256) or none of these (257, 1000, 4096 + 3); T = 1, T below and past the cpu set's 64-row
// workgroup (3, 70), and T past the gpu dweight lane's first 64-term block (8 lanes × 64 = 512: 600).
// eps alternates between the two values Llama-family configs use (1e-5, 1e-6).
// C = 1 has its own test below (its dX cancels).
const cases: Case[] = [
  { T: 1, C: 2 },
  { T: 1, C: 33, eps: 1e-5 },
  { T: 1, C: 129 },
  { T: 3, C: 7, eps: 1e-5 },
  { T: 3, C: 256 },
  { T: 4, C: 127, eps: 1e-5 },
  { T: 5, C: 257 },
  { T: 2, C: 1000, eps: 1e-5 },
  { T: 2, C: 4099 },
  { T: 70, C: 48, eps: 1e-5 },
  { T: 600, C: 40 },
];

/** The label suffix of each set's rmsnorm dispatches (src/engine/kernels/rmsnorm.ts). */
const LABEL: Record<KernelSet, RegExp> = { cpu: /\d$|\+=$/, gpu: / rows$/ };

// Both kernel sets ('cpu' one thread per row, barrier-free; 'gpu' one workgroup per row with
// workgroup-memory reductions) against the same float64 reference and tolerances.
for (const kernels of KERNEL_SETS)
  describe(`rmsnorm (${kernels} kernels) on the real adapter`, () => {
    for (const c of cases) {
      it(`T=${c.T} C=${c.C} eps=${c.eps ?? 1e-6}`, async () => {
        const err = await runCase(gpu(), kernels, c, c.T * 7919 + c.C);
        expect(
          err.labels.every((l) => LABEL[kernels].test(l)),
          err.labels.join(', '),
        ).toBe(true);
        expect(forwardErr(err)).toBeLessThan(FORWARD_TOLERANCE);
        expect(backwardErr(err)).toBeLessThan(BACKWARD_TOLERANCE);
      });
    }

    it('eps matters where mean(x²) is comparable to it: 1e-5 and 1e-6 each match their reference', async () => {
      // x ~ 3e-3: mean(x²) ~ 3e-6, between the two eps values, so the outputs differ by tens of percent.
      const c = { T: 3, C: 200, spread: 3e-3 };
      const a = await runCase(gpu(), kernels, { ...c, eps: 1e-5 }, 31);
      const b = await runCase(gpu(), kernels, { ...c, eps: 1e-6 }, 31);
      for (const err of [a, b]) {
        expect(forwardErr(err)).toBeLessThan(FORWARD_TOLERANCE);
        expect(backwardErr(err)).toBeLessThan(BACKWARD_TOLERANCE);
      }
      expect(compare(a.got.rstd, b.got.rstd).maxRel).toBeGreaterThan(0.1);
    });

    it('an all-zero row gives y = 0, rstd = 1/sqrt(eps) and dx = rstd·dy·weight', async () => {
      const err = await runCase(gpu(), kernels, { T: 3, C: 65, eps: 1e-5, zeroRows: [1] }, 12);
      expect(forwardErr(err)).toBeLessThan(FORWARD_TOLERANCE);
      expect(backwardErr(err)).toBeLessThan(BACKWARD_TOLERANCE);
      expect(err.got.y.subarray(65, 130).every((v) => v === 0)).toBe(true);
      expect(err.got.rstd[1] / (1 / Math.sqrt(1e-5))).toBeCloseTo(1, 6);
    });

    it('C = 1: y = weight·x/sqrt(x² + eps); dX, which cancels to rstd·g·eps/(x² + eps), within f32 of rstd·g', async () => {
      const ctx = gpu();
      const err = await runCase(ctx, kernels, { T: 3, C: 1, eps: 1e-5 }, 12);
      expect(forwardErr(err)).toBeLessThan(FORWARD_TOLERANCE);
      expect(Math.max(err.dweight, err.dweightAcc)).toBeLessThan(BACKWARD_TOLERANCE);
      // g − x̂·(g·x̂) = g·(1 − x̂²) with x̂² = x²/(x² + eps) ≈ 1: the f32 result carries a few ulps of the
      // cancelling terms rstd·|g| (PyTorch's f32 kernel does the same), so judge it against them.
      const { x, weight, dy } = err.inputs;
      const want = rmsNormBackwardRef(x, weight, dy, 3, 1, 1e-5).dx;
      for (let t = 0; t < 3; t++) {
        const scale = Math.abs(dy[t] * weight[0]) / Math.sqrt(x[t] ** 2 + 1e-5);
        expect(Math.abs(err.got.dx[t] - want[t]) / scale).toBeLessThan(BACKWARD_TOLERANCE);
      }
    });

    it('is bit-reproducible: two runs on the same inputs give the same bits', async () => {
      for (const c of [
        { T: 600, C: 40 },
        { T: 5, C: 1000 },
      ]) {
        const [a, b] = [await runCase(gpu(), kernels, c, 21), await runCase(gpu(), kernels, c, 21)];
        for (const [name, v] of Object.entries(a.got)) {
          const w = b.got[name as keyof typeof b.got];
          expect(new Uint32Array(v.buffer, v.byteOffset, v.length), `${c.T}x${c.C} ${name}`).toEqual(
            new Uint32Array(w.buffer, w.byteOffset, w.length),
          );
        }
      }
    });

    it('backward matches central finite differences of the float64 reference forward', async () => {
      // The kernel's dX and dweight against numeric gradients of L = Σ dY ⊙ RMSNorm(X)·weight taken on
      // the float64 reference at the f32 inputs (h = 1e-6: truncation ~h², rounding ~1e-16/h).
      const [T, C, eps] = [3, 37, 1e-5];
      const err = await runCase(gpu(), kernels, { T, C, eps }, 41);
      const x = Float64Array.from(err.inputs.x);
      const weight = Float64Array.from(err.inputs.weight);
      const { dy } = err.inputs;
      const loss = () => rmsNormForwardRef(x, weight, T, C, eps).y.reduce((s, v, i) => s + v * dy[i], 0);
      const numeric = (v: Float64Array) =>
        v.map((keep, i) => {
          const h = 1e-6;
          v[i] = keep + h;
          const plus = loss();
          v[i] = keep - h;
          const minus = loss();
          v[i] = keep;
          return (plus - minus) / (2 * h);
        });
      expect(compare(err.got.dx, numeric(x)).maxRel).toBeLessThan(BACKWARD_TOLERANCE);
      expect(compare(err.got.dweight, numeric(weight)).maxRel).toBeLessThan(BACKWARD_TOLERANCE);
    });

    it('rows folded into a y/z grid (as for T > 65535) are each normalized once', async () => {
      const ctx = gpu();
      const [T, C] = [5, 40];
      const rng = new Rng(13);
      const x = randomArray(rng, T * C);
      const weight = randomArray(rng, C);
      const buf = {
        x: await ctx.storageFrom('x', x),
        weight: await ctx.storageFrom('weight', weight),
        y: await ctx.storageFrom('y', new Float32Array(T * C + 7).fill(NaN)),
        rstd: await ctx.storage('rstd', T * 4),
      };
      const dispatch = await rmsNormForward(ctx, buf, { T, C, kernels });
      // One workgroup per row (gpu) or per 64 rows (cpu).
      const count = dispatch.workgroups[0] * dispatch.workgroups[1] * dispatch.workgroups[2];
      expect(count).toBe(kernels === 'gpu' ? T : 1);
      // Folded over a grid at most 2 wide: 3×2 for the gpu set's 5 (one surplus workgroup, which must
      // return), 3×2 for 5 cpu workgroups of which only the first holds rows.
      await ctx.run([{ ...dispatch, workgroups: foldWorkgroups(5, 2) }]);
      const y = await ctx.readF32(buf.y);
      expect(compare(y.subarray(0, T * C), rmsNormForwardRef(x, weight, T, C).y).maxRel).toBeLessThan(
        FORWARD_TOLERANCE,
      );
      expect(y.subarray(T * C).every(Number.isNaN)).toBe(true);
      for (const b of Object.values(buf)) b.destroy();
    });
  });

describe('rmsnorm shapes', () => {
  it('rejects bad shapes and eps with a ShapeError', async () => {
    const ctx = gpu();
    const b = await ctx.storage('b', 16);
    const bufs = { x: b, weight: b, y: b, rstd: b };
    for (const shape of [
      { T: 1, C: 0 },
      { T: -1, C: 4 },
      { T: 1.5, C: 4 },
      { T: 2 ** 16, C: 2 ** 16 },
      { T: 1, C: 4, eps: -1e-6 },
      { T: 1, C: 4, eps: NaN },
    ]) {
      await expect(rmsNormForward(ctx, bufs, shape), JSON.stringify(shape)).rejects.toBeInstanceOf(
        ShapeError,
      );
    }
    b.destroy();
  });
});

/** Central finite differences of L = Σ dY ⊙ RMSNorm(X)·weight in float64 against the analytic backward. */
describe('rmsnorm float64 reference', () => {
  for (const [T, C, eps] of [
    [1, 1, 1e-6],
    [2, 5, 1e-5],
    [3, 17, 1e-6],
  ]) {
    it(`backward matches finite differences at ${T}x${C}, eps ${eps}`, () => {
      const rng = new Rng(T * 31 + C);
      const x = Float64Array.from(randomArray(rng, T * C, 2));
      const weight = Float64Array.from(randomArray(rng, C));
      const dy = Float64Array.from(randomArray(rng, T * C));
      const loss = (): number =>
        rmsNormForwardRef(x, weight, T, C, eps).y.reduce((s, v, i) => s + v * dy[i], 0);
      const grads = rmsNormBackwardRef(x, weight, dy, T, C, eps);
      const h = 1e-6;
      const numeric = (v: Float64Array, i: number): number => {
        const keep = v[i];
        v[i] = keep + h;
        const plus = loss();
        v[i] = keep - h;
        const minus = loss();
        v[i] = keep;
        return (plus - minus) / (2 * h);
      };
      // Central differences in float64 with h = 1e-6: truncation ~h² and rounding ~1e-16/h ≈ 1e-10.
      for (let i = 0; i < T * C; i++) expect(grads.dx[i]).toBeCloseTo(numeric(x, i), 6);
      for (let c = 0; c < C; c++) expect(grads.dweight[c]).toBeCloseTo(numeric(weight, c), 6);
    });
  }

  it('forward rows have unit root mean square when weight = 1 and eps = 0', () => {
    const C = 8;
    const x = Float64Array.from(randomArray(new Rng(1), C, 5));
    const { y } = rmsNormForwardRef(x, new Float64Array(C).fill(1), 1, C, 0);
    expect(y.reduce((s, v) => s + v * v, 0) / C).toBeCloseTo(1, 12);
    // No mean subtraction: y keeps the sign pattern of x.
    expect(y.every((v, i) => Math.sign(v) === Math.sign(x[i]))).toBe(true);
  });
});
