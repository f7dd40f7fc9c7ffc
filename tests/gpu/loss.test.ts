import { describe, expect, it } from 'vitest';
import { ClsHead, NtpHead } from '../../src/engine/kernels/loss.ts';
import { crossEntropyRef, focalLossRef, type FocalOptions } from '../../src/engine/reference/loss.ts';
import { matmulRef } from '../../src/engine/reference/matmul.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// f32 dot products over D ≤ 70 terms and f32 exp/log: relative errors ~1e-6; 2e-5 of the scale leaves
// headroom while any wrong index, sign or missing factor is off by O(1).
const TOL = 2e-5;

describe('classification head + focal loss on the GPU', () => {
  const T = 37;
  const D = 70;
  const F = 9;
  const rng = new Rng(11);
  const hidden = randomArray(rng, T * D, 1);
  const score = randomArray(rng, 2 * D, 0.4);
  const rows = [3, 0, 36, 17, 20, 8, 29];
  const functions = rows.map((row, i) => ({ row, label: i % 3 === 0 ? 1 : 0, weight: i % 2 ? 3 : 1 }));

  function reference(focal: FocalOptions) {
    const logits = new Float64Array(rows.length * 2);
    rows.forEach((row, f) => {
      for (let j = 0; j < 2; j++) {
        let s = 0;
        for (let i = 0; i < D; i++) s += hidden[row * D + i] * score[j * D + i];
        logits[2 * f + j] = s;
      }
    });
    const l = focalLossRef(
      logits,
      functions.map((f) => f.label),
      functions.map((f) => f.weight),
      focal,
    );
    const dhidden = new Float64Array(T * D);
    const dscore = new Float64Array(2 * D);
    rows.forEach((row, f) => {
      for (let j = 0; j < 2; j++) {
        for (let i = 0; i < D; i++) {
          dhidden[row * D + i] += l.dlogits[2 * f + j] * score[j * D + i];
          dscore[j * D + i] += l.dlogits[2 * f + j] * hidden[row * D + i];
        }
      }
    });
    return { logits, loss: l.loss, dlogits: l.dlogits, dhidden, dscore };
  }

  it('logits, loss and gradients match the float64 reference; γ/α change without rebuilding', async () => {
    const ctx = gpu();
    const bufHidden = await ctx.storageFrom('hidden', hidden);
    const bufScore = await ctx.storageFrom('score', score);
    const dhidden = await ctx.storageFrom('dhidden', new Float32Array(T * D).fill(NaN));
    const dscore = await ctx.storageFrom('dscore', new Float32Array(2 * D).fill(0.5));
    const head = await ClsHead.create(
      ctx,
      { T, D, F },
      { hidden: bufHidden, score: bufScore, dhidden, dscore, accumulateScore: true },
    );
    head.setFunctions(functions);
    const dispatches = [...head.forward, ...head.lossDispatches, ...head.backward];
    let accumulated = new Float64Array(2 * D).fill(0.5);
    for (const focal of [
      { gamma: 0, alpha: null },
      { gamma: 2, alpha: 0.25 },
      { gamma: 1, alpha: null },
      { gamma: 0.5, alpha: 0.8 },
    ] as FocalOptions[]) {
      head.setFocal(focal);
      await ctx.run(dispatches);
      const want = reference(focal);
      const logits = await ctx.readF32(head.logits);
      expect(compare(logits.subarray(0, rows.length * 2), want.logits).maxRel).toBeLessThan(TOL);
      expect([...logits.subarray(rows.length * 2)]).toEqual([0, 0, 0, 0]);
      const [loss] = await ctx.readF32(head.loss);
      expect(Math.abs(loss - want.loss) / want.loss, `loss γ=${focal.gamma}`).toBeLessThan(TOL);
      const dl = await ctx.readF32(head.dlogits);
      expect(compare(dl.subarray(0, rows.length * 2), want.dlogits).maxRel).toBeLessThan(TOL);
      expect(compare(await ctx.readF32(dhidden), want.dhidden).maxRel).toBeLessThan(TOL);
      accumulated = accumulated.map((v, i) => v + want.dscore[i]);
      expect(compare(await ctx.readF32(dscore), accumulated).maxRel).toBeLessThan(TOL);
    }
    head.destroy();
  });

  it('fewer functions in a later batch: unused slots contribute nothing; confident logits stay finite', async () => {
    const ctx = gpu();
    const big = hidden.map((v, i) => (i < D ? v * 400 : v));
    const bufHidden = await ctx.storageFrom('hidden', big);
    const bufScore = await ctx.storageFrom('score', score);
    const dhidden = await ctx.storage('dhidden', T * D * 4);
    const head = await ClsHead.create(ctx, { T, D, F }, { hidden: bufHidden, score: bufScore, dhidden });
    head.setFocal({ gamma: 0.5, alpha: null });
    head.setFunctions(functions);
    await ctx.run([...head.forward, ...head.lossDispatches]);
    head.setFunctions(functions.slice(0, 1)); // row 3 only
    await ctx.run([...head.forward, ...head.lossDispatches, ...head.backward]);
    const logits = await ctx.readF32(head.logits, 2);
    const want = focalLossRef(Float64Array.from(logits), [1], [1], { gamma: 0.5, alpha: null });
    const [loss] = await ctx.readF32(head.loss);
    expect(Math.abs(loss - want.loss) / want.loss).toBeLessThan(TOL);
    const dh = await ctx.readF32(dhidden);
    expect(dh.every(Number.isFinite)).toBe(true);
    for (let t = 0; t < T; t++)
      if (t !== 3) expect(dh.subarray(t * D, (t + 1) * D).every((v) => v === 0)).toBe(true);
    // Row 0 holds a huge logit gap (p_t → 0 or 1): the gradient is finite either way.
    head.setFunctions([{ row: 0, label: 1, weight: 1 }]);
    await ctx.run([...head.forward, ...head.lossDispatches, ...head.backward]);
    const [l0] = await ctx.readF32(head.loss);
    expect(Number.isFinite(l0)).toBe(true);
    expect((await ctx.readF32(head.dlogits)).every(Number.isFinite)).toBe(true);
    head.destroy();
  });

  it('rejects bad batches with readable errors', async () => {
    const ctx = gpu();
    const buf = await ctx.storage('x', T * D * 4);
    const head = await ClsHead.create(ctx, { T, D, F: 2 }, { hidden: buf, score: buf, dhidden: buf });
    expect(() => head.setFunctions(functions)).toThrow(/7 functions exceed the capacity 2/);
    expect(() => head.setFunctions([{ row: 40, label: 0, weight: 1 }])).toThrow(/row 40 outside/);
    expect(() => head.setFunctions([{ row: 1, label: 2, weight: 1 }])).toThrow(/label 2/);
    expect(() => head.setFocal({ gamma: -1, alpha: null })).toThrow(/gamma/);
    head.destroy();
  });

  it('more functions than one workgroup has threads (F = 300)', async () => {
    const ctx = gpu();
    const T2 = 310;
    const D2 = 5;
    const r = new Rng(3);
    const h = randomArray(r, T2 * D2, 2);
    const s = randomArray(r, 2 * D2, 1);
    const fns = Array.from({ length: 300 }, (_, i) => ({
      row: i + 5,
      label: i % 7 === 0 ? 1 : 0,
      weight: 1 + (i % 3),
    }));
    const dh = await ctx.storage('dh', T2 * D2 * 4);
    const head = await ClsHead.create(
      ctx,
      { T: T2, D: D2, F: 300 },
      { hidden: await ctx.storageFrom('h', h), score: await ctx.storageFrom('s', s), dhidden: dh },
    );
    head.setFunctions(fns);
    head.setFocal({ gamma: 2, alpha: 0.3 });
    await ctx.run([...head.forward, ...head.lossDispatches]);
    const logits = Float64Array.from(await ctx.readF32(head.logits));
    const want = focalLossRef(
      logits,
      fns.map((f) => f.label),
      fns.map((f) => f.weight),
      { gamma: 2, alpha: 0.3 },
    );
    const [loss] = await ctx.readF32(head.loss);
    expect(Math.abs(loss - want.loss) / want.loss).toBeLessThan(TOL);
    expect(compare(await ctx.readF32(head.dlogits), want.dlogits).maxRel).toBeLessThan(TOL);
    head.destroy();
  });
});

describe('next-token head (tied wte) + cross-entropy on the GPU', () => {
  it('logits, loss, dlogits, dhidden and accumulated dwte match the float64 reference', async () => {
    const ctx = gpu();
    const [T, D, V] = [29, 24, 300];
    const rng = new Rng(21);
    const hidden = randomArray(rng, T * D);
    const wte = randomArray(rng, V * D, 0.5);
    const dwte0 = randomArray(rng, V * D, 0.1);
    const targets = Int32Array.from({ length: T }, (_, t) => (t % 5 === 4 ? -1 : rng.int(V)));
    const bufHidden = await ctx.storageFrom('hidden', hidden);
    const bufWte = await ctx.storageFrom('wte', wte);
    const dhidden = await ctx.storageFrom('dhidden', new Float32Array(T * D).fill(NaN));
    const dwte = await ctx.storageFrom('dwte', dwte0);
    const head = await NtpHead.create(
      ctx,
      { T, D, V },
      { hidden: bufHidden, wte: bufWte, dhidden, dwte, accumulateWte: true },
    );
    expect(head.setTargets(targets)).toBe(targets.filter((y) => y >= 0).length);
    await ctx.run(head.forward);
    const logits = await ctx.readF32(head.logits);
    const wantLogits = matmulRef(hidden, wte, undefined, T, V, D);
    expect(compare(logits, wantLogits).maxRel).toBeLessThan(TOL);
    await ctx.run([...head.lossDispatches, ...head.backward]);
    const want = crossEntropyRef(wantLogits, targets, V);
    const [loss] = await ctx.readF32(head.loss);
    expect(Math.abs(loss - want.loss) / want.loss).toBeLessThan(TOL);
    const dl = await ctx.readF32(head.logits);
    expect(compare(dl, want.dlogits).maxRel).toBeLessThan(TOL);
    for (let j = 0; j < V; j++) expect(dl[4 * V + j]).toBe(0); // masked row
    const wantDh = matmulRef(want.dlogits, wte, undefined, T, D, V, { transB: false });
    expect(compare(await ctx.readF32(dhidden), wantDh).maxRel).toBeLessThan(TOL);
    const wantDw = matmulRef(want.dlogits, hidden, dwte0, V, D, T, { transA: true, transB: false, beta: 1 });
    expect(compare(await ctx.readF32(dwte), wantDw).maxRel).toBeLessThan(TOL);
    head.destroy();
  });

  it('a batch without any target gives loss 0 and zero gradients', async () => {
    const ctx = gpu();
    const [T, D, V] = [4, 3, 5];
    const buf = await ctx.storageFrom('h', randomArray(new Rng(1), 20));
    const dh = await ctx.storage('dh', T * D * 4);
    const head = await NtpHead.create(ctx, { T, D, V }, { hidden: buf, wte: buf, dhidden: dh });
    expect(head.setTargets(new Int32Array(T).fill(-1))).toBe(0);
    await ctx.run([...head.forward, ...head.lossDispatches, ...head.backward]);
    expect((await ctx.readF32(head.loss))[0]).toBe(0);
    expect((await ctx.readF32(dh)).every((v) => v === 0)).toBe(true);
    expect(() => head.setTargets(new Int32Array(T).fill(V))).toThrow(/outside the vocabulary/);
    head.destroy();
  });
});
