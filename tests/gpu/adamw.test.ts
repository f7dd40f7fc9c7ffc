import { describe, expect, it } from 'vitest';
import { AdamWHyper, adamw, noClip } from '../../src/engine/kernels/adamw.ts';
import { adamwRef } from '../../src/engine/reference/adamw.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// Each step is ~10 f32 ops per element on values of size ~1 (p, m) or ~1e-3..1 (v): a few ulp per
// step, relative to each buffer's scale. Over 3 steps 2e-6 leaves margin and still catches a missed
// bias correction, a wrong clip factor or weight decay (all ≥ 1e-4 effects at these settings).
const TOLERANCE = 2e-6;

describe('adamw on the real adapter', () => {
  for (const n of [1, 300, 1000]) {
    it(`three steps with a changing lr, weight decay and a GPU-side clip factor, n=${n}`, async () => {
      const ctx = gpu();
      const rng = new Rng(n);
      const p0 = randomArray(rng, n);
      const m0 = randomArray(rng, n, 0.1);
      const v0 = randomArray(rng, n, 0.01).map(Math.abs);
      const grads = [randomArray(rng, n), randomArray(rng, n, 3), randomArray(rng, n, 0.01)];
      const clipScale = 0.625;
      const buf = {
        param: await ctx.storageFrom('p', p0),
        grad: await ctx.storage('g', n * 4),
        m: await ctx.storageFrom('m', m0),
        v: await ctx.storageFrom('v', v0),
        clip: await ctx.storageFrom('clip', new Float32Array([9, 3, clipScale, 0])),
      };
      const config = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8 };
      const hyper = AdamWHyper.create(ctx, config);
      const dispatch = await adamw(ctx, hyper, buf, n, { weightDecay: 0.1 });
      const p = Float64Array.from(p0);
      const m = Float64Array.from(m0);
      const v = Float64Array.from(v0);
      const lrs = [1e-3, 5e-4, 2e-2];
      for (let s = 0; s < 3; s++) {
        const step = s + 4; // a resumed run: bias corrections of steps 4..6
        hyper.setStep(step, lrs[s]);
        ctx.write(buf.grad, grads[s]);
        await ctx.run([dispatch]);
        adamwRef(p, grads[s], m, v, { ...config, step, lr: lrs[s], weightDecay: 0.1, clipScale });
      }
      expect(compare(await ctx.readF32(buf.param), p).maxRel).toBeLessThan(TOLERANCE);
      expect(compare(await ctx.readF32(buf.m), m).maxRel).toBeLessThan(TOLERANCE);
      expect(compare(await ctx.readF32(buf.v), v).maxRel).toBeLessThan(TOLERANCE);
      hyper.destroy();
      for (const b of Object.values(buf)) b.destroy();
    });
  }

  it('a tensor with its own learning rate (lrScale: a parameter group) steps as torch with lr × scale, weight decay included', async () => {
    const ctx = gpu();
    const n = 300;
    const rng = new Rng(11);
    const p0 = randomArray(rng, n);
    const grads = [randomArray(rng, n), randomArray(rng, n, 0.2)];
    const buf = {
      param: await ctx.storageFrom('p', p0),
      grad: await ctx.storage('g', n * 4),
      m: await ctx.storage('m', n * 4),
      v: await ctx.storage('v', n * 4),
      clip: await noClip(ctx),
    };
    const hyper = AdamWHyper.create(ctx, { lr: 3e-3 });
    const dispatch = await adamw(ctx, hyper, buf, n, { weightDecay: 0.05, lrScale: 10 });
    const p = Float64Array.from(p0);
    const m = new Float64Array(n);
    const v = new Float64Array(n);
    for (let s = 0; s < 2; s++) {
      const lr = s === 0 ? 3e-3 : 1e-3; // the schedule moves both groups together
      hyper.setStep(s + 1, lr);
      ctx.write(buf.grad, grads[s]);
      await ctx.run([dispatch]);
      adamwRef(p, grads[s], m, v, { step: s + 1, lr: 10 * lr, weightDecay: 0.05 });
    }
    const got = await ctx.readF32(buf.param);
    expect(compare(got, p).maxRel).toBeLessThan(TOLERANCE);
    // step 1 moves each parameter by about 10 × lr
    expect(Math.abs(p0[0] - got[0])).toBeGreaterThan(0.02);
    await expect(adamw(ctx, hyper, buf, n, { lrScale: 0 })).rejects.toThrow(/lrScale/);
    hyper.destroy();
    for (const b of Object.values(buf)) b.destroy();
  });

  it('first step from zero state moves every parameter by about lr (torch semantics)', async () => {
    const ctx = gpu();
    const n = 257;
    const rng = new Rng(5);
    const p0 = randomArray(rng, n);
    const g = randomArray(rng, n);
    const buf = {
      param: await ctx.storageFrom('p', p0),
      grad: await ctx.storageFrom('g', g),
      m: await ctx.storage('m', n * 4),
      v: await ctx.storage('v', n * 4),
      clip: await noClip(ctx),
    };
    const hyper = AdamWHyper.create(ctx, { lr: 0.01 });
    await ctx.run([await adamw(ctx, hyper, buf, n, { weightDecay: 0 })]);
    const p = Float64Array.from(p0);
    adamwRef(p, g, new Float64Array(n), new Float64Array(n), { step: 1, lr: 0.01, weightDecay: 0 });
    const got = await ctx.readF32(buf.param);
    expect(compare(got, p).maxRel).toBeLessThan(TOLERANCE);
    // Step 1 of Adam is lr·sign(g) (up to eps).
    for (let i = 0; i < n; i++) expect(Math.abs(p0[i] - got[i])).toBeCloseTo(0.01, 5);
  });

  it('skips the update when the clip buffer flags non-finite gradients', async () => {
    const ctx = gpu();
    const n = 100;
    const rng = new Rng(6);
    const p0 = randomArray(rng, n);
    const m0 = randomArray(rng, n);
    const v0 = randomArray(rng, n).map(Math.abs);
    const g = randomArray(rng, n);
    g[17] = NaN;
    const buf = {
      param: await ctx.storageFrom('p', p0),
      grad: await ctx.storageFrom('g', g),
      m: await ctx.storageFrom('m', m0),
      v: await ctx.storageFrom('v', v0),
      clip: await ctx.storageFrom('clip', new Float32Array([NaN, NaN, 0, 1])),
    };
    const hyper = AdamWHyper.create(ctx, { lr: 0.01 });
    await ctx.run([await adamw(ctx, hyper, buf, n)]);
    expect(Array.from(await ctx.readF32(buf.param))).toEqual(Array.from(p0));
    expect(Array.from(await ctx.readF32(buf.m))).toEqual(Array.from(m0));
    expect(Array.from(await ctx.readF32(buf.v))).toEqual(Array.from(v0));
    // Without skipping, the same flag is ignored and the parameters move (the NaN lands in p[17]).
    await ctx.run([await adamw(ctx, hyper, buf, n, { skipNonFinite: false })]);
    const moved = await ctx.readF32(buf.param);
    expect(moved[0]).not.toBe(p0[0]);
  });

  it('rejects step 0', () => {
    const hyper = AdamWHyper.create(gpu(), { lr: 1 });
    expect(() => hyper.setStep(0)).toThrow();
    hyper.destroy();
  });
});
