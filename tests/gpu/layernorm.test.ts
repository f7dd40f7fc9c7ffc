import { describe, expect, it } from 'vitest';
import { KERNEL_SETS, type KernelSet } from '../../src/engine/gpu/context.ts';
import type { GpuContext } from '../../src/engine/gpu/index.ts';
import {
  layerNormBackward,
  layerNormBackwardParams,
  layerNormForward,
} from '../../src/engine/kernels/layernorm.ts';
import { foldWorkgroups } from '../../src/engine/kernels/layer-grid.ts';
import { layerNormBackwardRef, layerNormForwardRef } from '../../src/engine/reference/layernorm.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// Forward: each output is a few f32 ops on sums of C terms; error ~ (log2(C) + few)·2^-24 relative to
// the output scale, so 2e-6 holds up to C = 6144. dX: the two row sums and the subtraction
// g − mean(g) − x̂·mean(g·x̂) (cancelling terms of size ~rstd·|g|) cost a little more: 1e-5.
// dgamma/dbeta: sums of T products, as bias backward: 1e-5.
const FORWARD_TOLERANCE = 2e-6;
const BACKWARD_TOLERANCE = 1e-5;

interface Case {
  T: number;
  C: number;
  offset?: number;
  spread?: number;
  /** Massive-activation outliers: [column, value] set in every row. */
  outliers?: [number, number][];
}

async function runCase(
  ctx: GpuContext,
  kernels: KernelSet,
  { T, C, offset = 0, spread = 1, outliers = [] }: Case,
  seed: number,
) {
  const rng = new Rng(seed);
  const x = randomArray(rng, T * C, spread).map((v) => v + offset);
  for (let t = 0; t < T; t++) for (const [c, value] of outliers) x[t * C + c] = value;
  const gamma = randomArray(rng, C).map((v) => v + 1);
  const beta = randomArray(rng, C);
  const dy = randomArray(rng, T * C);
  const dxOld = randomArray(rng, T * C);
  const dgOld = randomArray(rng, C);
  const dbOld = randomArray(rng, C);
  const eps = 1e-5;
  const buf = {
    x: await ctx.storageFrom('x', x),
    gamma: await ctx.storageFrom('gamma', gamma),
    beta: await ctx.storageFrom('beta', beta),
    y: await ctx.storageFrom('y', new Float32Array(T * C).fill(NaN)),
    mean: await ctx.storage('mean', T * 4),
    rstd: await ctx.storage('rstd', T * 4),
    dy: await ctx.storageFrom('dy', dy),
    dx: await ctx.storageFrom('dx', new Float32Array(T * C).fill(NaN)),
    dxAcc: await ctx.storageFrom('dxAcc', dxOld),
    dgamma: await ctx.storageFrom('dgamma', new Float32Array(C).fill(NaN)),
    dbeta: await ctx.storageFrom('dbeta', new Float32Array(C).fill(NaN)),
    dgammaAcc: await ctx.storageFrom('dgammaAcc', dgOld),
    dbetaAcc: await ctx.storageFrom('dbetaAcc', dbOld),
  };
  const shape = { T, C, eps, kernels };
  const dispatches = [
    await layerNormForward(ctx, buf, shape),
    await layerNormBackward(ctx, buf, shape),
    await layerNormBackward(ctx, { ...buf, dx: buf.dxAcc }, shape, { accumulate: true }),
    await layerNormBackwardParams(ctx, buf, shape),
    await layerNormBackwardParams(ctx, { ...buf, dgamma: buf.dgammaAcc, dbeta: buf.dbetaAcc }, shape, {
      accumulate: true,
    }),
  ];
  await ctx.run(dispatches);
  const fwd = layerNormForwardRef(x, gamma, beta, T, C, eps);
  const bwd = layerNormBackwardRef(x, gamma, dy, T, C, eps);
  const got = {
    y: await ctx.readF32(buf.y),
    mean: await ctx.readF32(buf.mean),
    rstd: await ctx.readF32(buf.rstd),
    dx: await ctx.readF32(buf.dx),
    dxAcc: await ctx.readF32(buf.dxAcc),
    dgamma: await ctx.readF32(buf.dgamma),
    dbeta: await ctx.readF32(buf.dbeta),
    dgammaAcc: await ctx.readF32(buf.dgammaAcc),
    dbetaAcc: await ctx.readF32(buf.dbetaAcc),
  };
  for (const b of Object.values(buf)) b.destroy();
  const plus = (a: Float64Array, b: Float32Array) => a.map((v, i) => v + b[i]);
  const labels = dispatches.map((d) => d.label);
  return {
    got,
    labels,
    y: compare(got.y, fwd.y).maxRel,
    // The mean of a zero-centred row is tiny: judge it against the row's magnitude (|mean| + std),
    // which is what an f32 mean can resolve.
    mean:
      compare(got.mean, fwd.mean).maxAbs / Math.max(...fwd.mean.map((m, t) => Math.abs(m) + 1 / fwd.rstd[t])),
    rstd: compare(got.rstd, fwd.rstd).maxRel,
    dx: compare(got.dx, bwd.dx).maxRel,
    dxAcc: compare(got.dxAcc, plus(bwd.dx, dxOld)).maxRel,
    dgamma: compare(got.dgamma, bwd.dgamma).maxRel,
    dbeta: compare(got.dbeta, bwd.dbeta).maxRel,
    dgammaAcc: compare(got.dgammaAcc, plus(bwd.dgamma, dgOld)).maxRel,
    dbetaAcc: compare(got.dbetaAcc, plus(bwd.dbeta, dbOld)).maxRel,
  };
}

// Ragged widths for both sets: C = 1, C below the gpu set's 128-thread row workgroup (33, 48) and its
// 32-column dgamma/dbeta block (1, 7), C one short of / one past / a multiple of it (127, 129, 256) or
// none of these (257, 1000, 6144); T = 1, T below and past the cpu set's 64-row workgroup (3, 70), and
// T past the gpu dgamma/dbeta lane's first 64-term block (8 lanes × 64 = 512 rows: 600).
const cases: Case[] = [
  { T: 1, C: 1 },
  { T: 1, C: 33 },
  { T: 1, C: 129 },
  { T: 3, C: 7 },
  { T: 3, C: 256 },
  { T: 4, C: 127 },
  { T: 5, C: 257 },
  { T: 2, C: 1000 },
  { T: 2, C: 6144 },
  { T: 70, C: 48 },
  { T: 600, C: 40 },
];

/** The label suffix of each set's layernorm dispatches (src/engine/kernels/layernorm.ts). */
const LABEL: Record<KernelSet, RegExp> = { cpu: /\d$|\+=$/, gpu: / rows$/ };

// Both kernel sets ('cpu' one thread per row, barrier-free; 'gpu' one workgroup per row with
// workgroup-memory reductions) against the same float64 reference and tolerances.
for (const kernels of KERNEL_SETS)
  describe(`layernorm (${kernels} kernels) on the real adapter`, () => {
    for (const c of cases) {
      it(`T=${c.T} C=${c.C}`, async () => {
        const err = await runCase(gpu(), kernels, c, c.T * 7919 + c.C);
        expect(
          err.labels.every((l) => LABEL[kernels].test(l)),
          err.labels.join(', '),
        ).toBe(true);
        expect(Math.max(err.y, err.mean, err.rstd)).toBeLessThan(FORWARD_TOLERANCE);
        expect(Math.max(err.dx, err.dxAcc, err.dgamma, err.dbeta, err.dgammaAcc, err.dbetaAcc)).toBeLessThan(
          BACKWARD_TOLERANCE,
        );
      });
    }

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

    it('large common offset (1e4 ± 1): forward keeps full precision', async () => {
      const err = await runCase(gpu(), kernels, { T: 4, C: 1000, offset: 1e4 }, 11);
      // The forward sums x − x₀ (exact), so the offset costs nothing.
      expect(Math.max(err.y, err.mean, err.rstd)).toBeLessThan(FORWARD_TOLERANCE);
      // The backward rebuilds x̂ = (x − mean)·rstd from the saved f32 mean, as PyTorch does: mean carries
      // up to ulp(1e4)/2 ≈ 5e-4 of absolute error, i.e. 5e-4 of x̂'s unit scale; 1e-3 bounds that.
      expect(Math.max(err.dx, err.dgamma, err.dgammaAcc)).toBeLessThan(1e-3);
      expect(Math.max(err.dbeta, err.dbetaAcc)).toBeLessThan(BACKWARD_TOLERANCE);
    });

    it('outlier features (the row shift element itself among them) keep forward and backward accurate', async () => {
      const err = await runCase(
        gpu(),
        kernels,
        {
          T: 3,
          C: 768,
          outliers: [
            [0, 2500],
            [5, -3000],
            [700, 900],
          ],
        },
        14,
      );
      expect(Math.max(err.y, err.mean, err.rstd)).toBeLessThan(FORWARD_TOLERANCE);
      expect(Math.max(err.dx, err.dxAcc, err.dgamma, err.dbeta, err.dgammaAcc, err.dbetaAcc)).toBeLessThan(
        BACKWARD_TOLERANCE,
      );
    });

    it('C = 1 gives y = beta and dx = 0 (zero variance)', async () => {
      const err = await runCase(gpu(), kernels, { T: 3, C: 1, offset: 5 }, 12);
      expect(Math.max(err.y, err.rstd)).toBeLessThan(FORWARD_TOLERANCE);
      expect(err.dx).toBe(0);
    });

    it('rows folded into a y/z grid (as for T > 65535) are each normalized once', async () => {
      const ctx = gpu();
      const [T, C] = [5, 40];
      const rng = new Rng(13);
      const x = randomArray(rng, T * C);
      const gamma = randomArray(rng, C);
      const beta = randomArray(rng, C);
      const buf = {
        x: await ctx.storageFrom('x', x),
        gamma: await ctx.storageFrom('gamma', gamma),
        beta: await ctx.storageFrom('beta', beta),
        y: await ctx.storageFrom('y', new Float32Array(T * C + 7).fill(NaN)),
        mean: await ctx.storage('mean', T * 4),
        rstd: await ctx.storage('rstd', T * 4),
      };
      const dispatch = await layerNormForward(ctx, buf, { T, C, kernels });
      // One workgroup per row (gpu) or per 64 rows (cpu), folded over a grid at most 2 wide: 3×2 for
      // the gpu set's 5 (one surplus workgroup), 1×1 for the cpu set.
      const count = dispatch.workgroups[0] * dispatch.workgroups[1] * dispatch.workgroups[2];
      expect(count).toBe(kernels === 'gpu' ? T : 1);
      await ctx.run([{ ...dispatch, workgroups: foldWorkgroups(kernels === 'gpu' ? T : 5, 2) }]);
      const y = await ctx.readF32(buf.y);
      expect(compare(y.subarray(0, T * C), layerNormForwardRef(x, gamma, beta, T, C).y).maxRel).toBeLessThan(
        FORWARD_TOLERANCE,
      );
      expect(y.subarray(T * C).every(Number.isNaN)).toBe(true);
      for (const b of Object.values(buf)) b.destroy();
    });
  });
