import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu/index.ts';
import { dropout, DropoutParams, prepareLora, type LoraShape } from '../../src/engine/kernels/lora.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { dropoutMaskRef, loraRef } from '../../src/engine/reference/lora.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// Chains of two or three f32 matmuls with K ≤ 100 terms of size ~1: 1e-5 of the scale leaves room
// for f32 rounding and catches any indexing, transpose or scaling mistake (those are O(1)).
const TOLERANCE = 1e-5;

describe('dropout kernel', () => {
  it('reproduces the CPU mask exactly, per (seed, site, step), with the 1/(1−p) scale', async () => {
    const ctx = gpu();
    const n = 5000; // not a multiple of the 256-thread workgroup
    const p = 0.3;
    const src = await ctx.storageFrom('ones', new Float32Array(n).fill(1));
    const dst = await ctx.storage('dst', n * 4);
    const params = new DropoutParams(ctx, n, p, 1234, 7, 0);
    const dispatch = await dropout(ctx, src, dst, params);
    const run = async (step: number) => {
      params.setStep(step);
      await ctx.run([dispatch]);
      return ctx.readF32(dst);
    };
    const scale = Math.fround(1 / (1 - p));
    const first = await run(3);
    const mask = dropoutMaskRef(n, 1234, 7, 3, p);
    expect(Array.from(first)).toEqual(Array.from(mask, (m) => (m ? scale : 0)));
    // Kept fraction ~ 1 − p (binomial sd ≈ 0.0065 at n = 5000).
    const kept = mask.reduce((sum, m) => sum + m, 0) / n;
    expect(Math.abs(kept - (1 - p))).toBeLessThan(0.03);

    const other = await run(4);
    const maskOther = dropoutMaskRef(n, 1234, 7, 4, p);
    expect(Array.from(other)).toEqual(Array.from(maskOther, (m) => (m ? scale : 0)));
    const same = mask.reduce((sum, m, i) => sum + (m === maskOther[i] ? 1 : 0), 0) / n;
    expect(same).toBeLessThan(0.7); // independent masks agree on ~p² + (1−p)² = 58 %
    // Another site at the same step differs too; going back to step 3 is bit-exact (resume).
    const otherSite = dropoutMaskRef(n, 1234, 8, 3, p);
    expect(otherSite.reduce((sum, m, i) => sum + (m === mask[i] ? 1 : 0), 0) / n).toBeLessThan(0.7);
    expect(Array.from(await run(3))).toEqual(Array.from(first));
  });

  it('accumulates into dst when beta = 1 (the backward use)', async () => {
    const ctx = gpu();
    const rng = new Rng(2);
    const n = 300;
    const p = 0.5;
    const g = randomArray(rng, n);
    const d0 = randomArray(rng, n);
    const src = await ctx.storageFrom('g', g);
    const dst = await ctx.storageFrom('d', d0);
    const params = new DropoutParams(ctx, n, p, 9, 1, 1);
    params.setStep(11);
    await ctx.run([await dropout(ctx, src, dst, params)]);
    const mask = dropoutMaskRef(n, 9, 1, 11, p);
    const want = Array.from(d0, (d, i) => d + (mask[i] ? g[i] * 2 : 0));
    expect(compare(await ctx.readF32(dst), want).maxAbs).toBeLessThan(1e-6);
  });
});

interface LoraCase {
  shape: LoraShape;
  accumulate: boolean;
  accumulateDx: boolean;
}

async function checkLora(ctx: GpuContext, { shape, accumulate, accumulateDx }: LoraCase): Promise<void> {
  const { T, inFeatures: I, outFeatures: O, rank: R, dropout: p } = shape;
  const rng = new Rng(T * 1000 + I * 10 + O + R + Math.round(p * 100));
  const x = randomArray(rng, T * I);
  const a = randomArray(rng, R * I);
  const b = randomArray(rng, O * R);
  const y0 = randomArray(rng, T * O);
  const dy = randomArray(rng, T * O);
  const dx0 = randomArray(rng, T * I);
  const gradA0 = randomArray(rng, R * I);
  const gradB0 = randomArray(rng, O * R);
  const seed = 42;
  const site = 3;
  const step = 17;
  const buffers = {
    x: await ctx.storageFrom('x', x),
    a: await ctx.storageFrom('A', a),
    b: await ctx.storageFrom('B', b),
    y: await ctx.storageFrom('y', y0),
    h: await ctx.storageFrom('h', new Float32Array(T * R).fill(NaN)),
    dy: await ctx.storageFrom('dy', dy),
    dx: await ctx.storageFrom('dx', accumulateDx ? dx0 : new Float32Array(T * I).fill(NaN)),
    gradA: await ctx.storageFrom('gradA', accumulate ? gradA0 : new Float32Array(R * I).fill(NaN)),
    gradB: await ctx.storageFrom('gradB', accumulate ? gradB0 : new Float32Array(O * R).fill(NaN)),
    dh: await ctx.storageFrom('dh', new Float32Array(T * R).fill(NaN)),
    ...(p > 0
      ? {
          xDrop: await ctx.storageFrom('xDrop', new Float32Array(T * I).fill(NaN)),
          dxDrop: await ctx.storageFrom('dxDrop', new Float32Array(T * I).fill(NaN)),
        }
      : {}),
  };
  const lora = await prepareLora(ctx, buffers, shape, { seed, site, accumulate, accumulateDx });
  lora.setStep(step);
  await ctx.run([...lora.forward, ...lora.backward]);

  const mask = p > 0 ? dropoutMaskRef(T * I, seed, site, step, p) : undefined;
  const ref = loraRef({ x, a, b, ...shape, mask }, dy);
  const plus = (base: Float32Array, delta: Float64Array, on: boolean) =>
    Float64Array.from(delta, (d, i) => d + (on ? base[i] : 0));
  const checks: [string, GPUBuffer, Float64Array][] = [
    ['y', buffers.y, plus(y0, ref.y, true)],
    ['h', buffers.h, ref.h],
    ['gradA', buffers.gradA, plus(gradA0, ref.gradA, accumulate)],
    ['gradB', buffers.gradB, plus(gradB0, ref.gradB, accumulate)],
    ['dx', buffers.dx, plus(dx0, ref.dx, accumulateDx)],
  ];
  for (const [name, buffer, want] of checks) {
    const { maxRel } = compare(await ctx.readF32(buffer), want);
    expect([name, maxRel < TOLERANCE ? 'ok' : maxRel]).toEqual([name, 'ok']);
  }
  // The branch's part must not be negligible, or the checks above would prove little.
  expect(compare(new Float64Array(T * O), ref.y).maxAbs).toBeGreaterThan(0.1);
  for (const buffer of Object.values(buffers)) buffer.destroy();
}

describe('LoRA branch (forward and gradients) on the real adapter', () => {
  const shapes: [number, number, number, number][] = [
    // [T, in, out, r]
    [1, 37, 5, 1],
    [19, 45, 70, 8],
    [65, 33, 100, 4],
  ];
  for (const [T, inFeatures, outFeatures, rank] of shapes) {
    for (const p of [0, 0.3]) {
      it(`T=${T} in=${inFeatures} out=${outFeatures} r=${rank} dropout=${p}`, async () => {
        const shape = { T, inFeatures, outFeatures, rank, alpha: 16, dropout: p };
        await checkLora(gpu(), { shape, accumulate: false, accumulateDx: true });
      });
    }
  }

  it('gradient accumulation (beta = 1) into A/B grads, dx overwritten', async () => {
    const shape = { T: 9, inFeatures: 40, outFeatures: 24, rank: 8, alpha: 8, dropout: 0.1 };
    await checkLora(gpu(), { shape, accumulate: true, accumulateDx: false });
  });

  it('same (seed, site, step) gives bit-identical results from a fresh preparation (resume)', async () => {
    const ctx = gpu();
    const shape = { T: 7, inFeatures: 50, outFeatures: 30, rank: 4, alpha: 8, dropout: 0.2 };
    const rng = new Rng(8);
    const x = randomArray(rng, 7 * 50);
    const a = randomArray(rng, 4 * 50);
    const b = randomArray(rng, 30 * 4);
    const runOnce = async (step: number) => {
      const buffers = {
        x: await ctx.storageFrom('x', x),
        a: await ctx.storageFrom('A', a),
        b: await ctx.storageFrom('B', b),
        y: await ctx.storage('y', 7 * 30 * 4),
        h: await ctx.storage('h', 7 * 4 * 4),
        xDrop: await ctx.storage('xDrop', 7 * 50 * 4),
      };
      const lora = await prepareLora(ctx, buffers, shape, { seed: 5, site: 2 });
      expect(lora.backward).toEqual([]);
      lora.setStep(step);
      await ctx.run(lora.forward);
      return Array.from(await ctx.readF32(buffers.y));
    };
    const first = await runOnce(100);
    expect(await runOnce(100)).toEqual(first);
    expect(await runOnce(101)).not.toEqual(first);
  });

  it('rejects dropout without scratch buffers and bad shapes', async () => {
    const ctx = gpu();
    const small = await ctx.storage('s', 64);
    const base = { x: small, a: small, b: small, y: small, h: small };
    const shape = { T: 1, inFeatures: 4, outFeatures: 4, rank: 1, alpha: 1, dropout: 0.5 };
    await expect(prepareLora(ctx, base, shape, { seed: 1, site: 1 })).rejects.toThrow(/xDrop/);
    await expect(prepareLora(ctx, base, { ...shape, dropout: 1 }, { seed: 1, site: 1 })).rejects.toThrow(
      RangeError,
    );
    await expect(prepareLora(ctx, base, { ...shape, rank: 0 }, { seed: 1, site: 1 })).rejects.toThrow(
      RangeError,
    );
  });
});
