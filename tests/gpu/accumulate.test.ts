import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fill } from '../../src/engine/kernels/add.ts';
import { DecoderGpu } from '../../src/engine/model/decoder-gpu.ts';
import { TrainStep } from '../../src/engine/model/train-step.ts';
import { parseGoldenCase, type GoldenCase } from '../../src/engine/model/golden.ts';
import { planMemory } from '../../src/engine/model/memory-plan.ts';
import { ModelOptimizer } from '../../src/engine/model/optimizer.ts';
import {
  accumulatedLossAndGradsRef,
  adamwStepRef,
  clipGradNormRef,
  lossAndGradsRef,
  trainRef,
  type PackedBatch,
  type ParamMap,
} from '../../src/engine/reference/model.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

const fixture = (name: string): GoldenCase =>
  parseGoldenCase(
    JSON.parse(readFileSync(new URL(`../fixtures/engine/${name}.json`, import.meta.url), 'utf8')),
  );
// Both share one config (MQA, gelu), so the second reuses the first's pipelines. The full finetune
// exercises every gradient producer (embedding scatter, layernorm, bias, matmul, score); the other
// LoRA A/B + score.
const FULL = fixture('packed_cls_full');
const LORA = fixture('packed_cls_mqa_gelu');

// The tolerances of tests/gpu/model.test.ts, for the same reasons: f32 rounding through 2 blocks is
// ~1e-6 of each tensor's scale (10× headroom); after 3 AdamW steps an element's update carries its
// gradient's relative error (1e-2 of 3·lr); step 1 alone is float64 AdamW on the GPU's own gradients.
const FORWARD_TOL = 1e-5;
const GRAD_TOL = 2e-5;
const UPDATE_TOL = 1e-2;
const STEP1_TOL = 1e-3;

/** Pack k of a batch as a batch of one pack, with that pack's functions. */
function packOf(batch: PackedBatch, k: number): PackedBatch {
  return {
    inputIds: [batch.inputIds[k]],
    segmentIds: [batch.segmentIds[k]],
    positionIds: [batch.positionIds[k]],
    functions: batch.functions.filter((f) => f.pack === k).map((f) => ({ ...f, pack: 0 })),
  };
}

async function build(gc: GoldenCase, packs: number, accumulate?: number) {
  const ctx = gpu();
  const model = await DecoderGpu.create(
    ctx,
    { config: gc.config, lora: gc.lora, mode: gc.mode, objective: gc.objective, trainable: gc.trainable },
    gc.params,
  );
  const step = await TrainStep.create(model, {
    packs,
    packLength: gc.batch.inputIds[0].length,
    maxFunctions: 8,
  });
  step.setFocal(gc.focal);
  const opt = await ModelOptimizer.create(model, { ...gc.optimizer, accumulate });
  return {
    ctx,
    model,
    step,
    opt,
    readParams: async () =>
      new Map(
        await Promise.all(model.trainableNames.map(async (n) => [n, await model.readParam(n)] as const)),
      ),
    destroy() {
      opt.destroy();
      step.destroy();
      model.destroy();
    },
  };
}

type Built = Awaited<ReturnType<typeof build>>;

/** One optimizer step over the micro-batches `micro`; returns the mean of their losses. */
async function optimizerStep(m: Built, micro: readonly PackedBatch[]): Promise<number> {
  m.opt.nextStep();
  let loss = 0;
  for (const [k, batch] of micro.entries()) {
    m.step.setBatch(batch);
    await m.step.run(m.opt.microDispatches(k, micro.length));
    loss += (await m.step.readLoss()) / micro.length;
  }
  return loss;
}

describe('gradient accumulation over micro-batches', { timeout: 600_000 }, () => {
  it('equal function counts: 2 micro-batches of one pack give the gradient of one batch of both packs', async () => {
    // Each micro-batch's loss is a mean over its functions, so the mean of the two means is the mean
    // over all functions only when both have as many: drop one of pack 0's four (3 + 3).
    const batch = { ...FULL.batch, functions: FULL.batch.functions.filter((_, i) => i !== 1) };
    expect(packOf(batch, 0).functions.length).toBe(packOf(batch, 1).functions.length);
    const big = await build(FULL, 2);
    const acc = await build(FULL, 1, 2);
    const bigLoss = await optimizerStep(big, [batch]);
    const accLoss = await optimizerStep(acc, [packOf(batch, 0), packOf(batch, 1)]);
    expect(Math.abs(accLoss - bigLoss) / bigLoss).toBeLessThan(FORWARD_TOL);
    // The gradient buffers hold the mean gradient the optimizer used (AdamW does not touch them).
    for (const name of big.model.trainableNames) {
      const want = await big.model.readGrad(name);
      expect(compare(await acc.model.readGrad(name), want).maxRel, name).toBeLessThan(GRAD_TOL);
    }
    const [b, a] = [await big.opt.readGradNorm(), await acc.opt.readGradNorm()];
    expect(b.scale).toBeLessThan(1); // clipped, on the accumulated gradient's norm
    expect(Math.abs(a.norm - b.norm) / b.norm).toBeLessThan(GRAD_TOL);
    expect(Math.abs(a.scale - b.scale) / b.scale).toBeLessThan(GRAD_TOL);
    big.destroy();
    acc.destroy();
  });

  // LORA with accumulate 3 runs steps of 2 micro-batches: an epoch's remainder, averaged over 2.
  for (const [gc, accumulate] of [
    [FULL, 2],
    [LORA, 3],
  ] as const) {
    it(`${gc.name}, accumulate ${accumulate}: 3 optimizer steps of 2 micro-batches (4 + 3 functions) match the float64 reference`, async () => {
      const spec = { config: gc.config, lora: gc.lora, mode: gc.mode };
      const options = { objective: gc.objective, focal: gc.focal };
      const micro = [packOf(gc.batch, 0), packOf(gc.batch, 1)];
      const names = gc.expected.trainable;
      const want1 = accumulatedLossAndGradsRef(spec, gc.params, micro, options);
      // With unequal counts, accumulation is the mean of the micro-batches' means, not the big batch's.
      const whole = lossAndGradsRef(spec, gc.params, gc.batch, options);
      const apart = Math.max(...names.map((n) => compare(whole.grads.get(n)!, want1.grads.get(n)!).maxRel));
      expect(apart).toBeGreaterThan(100 * GRAD_TOL);
      const params64: ParamMap = new Map(names.map((n) => [n, Float64Array.from(gc.params.get(n)!)]));
      const records = trainRef(spec, new Map([...gc.params, ...params64]), micro, {
        ...options,
        ...gc.optimizer,
        trainable: names,
      });
      expect(records[0].grad_norm).toBeGreaterThan(gc.optimizer.max_grad_norm); // clipping is exercised

      const m = await build(gc, 1, accumulate);
      const before = await m.readParams();
      for (let s = 0; s < gc.optimizer.steps; s++) {
        const loss = await optimizerStep(m, micro);
        expect(Math.abs(loss - records[s].loss) / records[s].loss, `step ${s} loss`).toBeLessThan(
          FORWARD_TOL,
        );
        const { norm, scale, nonFinite } = await m.opt.readGradNorm();
        expect(nonFinite).toBe(false);
        const wantNorm = records[s].grad_norm;
        expect(Math.abs(norm - wantNorm) / wantNorm, `step ${s} norm`).toBeLessThan(GRAD_TOL);
        const wantScale = Math.min(1, gc.optimizer.max_grad_norm / (wantNorm + 1e-6));
        expect(Math.abs(scale - wantScale) / wantScale).toBeLessThan(GRAD_TOL);
        if (s > 0) continue;
        // Step 1: the mean gradient, and float64 clip + AdamW on the GPU's own mean gradient.
        const grads: ParamMap = new Map();
        for (const name of names) {
          const g = await m.model.readGrad(name);
          expect(compare(g, want1.grads.get(name)!).maxRel, name).toBeLessThan(GRAD_TOL);
          grads.set(name, Float64Array.from(g));
        }
        const p: ParamMap = new Map(names.map((n) => [n, Float64Array.from(before.get(n)!)]));
        clipGradNormRef(
          names.map((n) => grads.get(n)!),
          gc.optimizer.max_grad_norm,
        );
        adamwStepRef(p, grads, names, { step: 0, m: new Map(), v: new Map() }, gc.optimizer);
        for (const name of names) {
          const err = compare(await m.model.readParam(name), p.get(name)!).maxAbs;
          expect(err / gc.optimizer.lr, `step 1 ${name}`).toBeLessThan(STEP1_TOL);
        }
      }
      // After 3 steps, as in model.test.ts: elements whose true gradient is rounding noise (the key
      // bias under multi-query attention) are only held to Adam's bound |Δ| ≤ steps·lr.
      const bound = gc.optimizer.lr * gc.optimizer.steps;
      for (const name of names) {
        const b = before.get(name)!;
        const got = Array.from(await m.model.readParam(name), (v, i) => v - b[i]);
        const want = Array.from(params64.get(name)!, (v, i) => v - gc.params.get(name)![i]);
        const g = want1.grads.get(name)!;
        const gMax = g.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
        let worst = 0;
        got.forEach((v, i) => {
          if (Math.abs(g[i]) < 1e-6 * gMax) expect(Math.abs(v)).toBeLessThan(1.01 * bound + 1e-6);
          else worst = Math.max(worst, Math.abs(v - want[i]));
        });
        expect(worst / bound, name).toBeLessThan(UPDATE_TOL);
      }
      m.destroy();
    });
  }

  it('accumulate = 1 is the plain step: same dispatches, no accumulators, bit-identical updates', async () => {
    const plain = await build(LORA, 2);
    const one = await build(LORA, 2, 1);
    expect(one.opt.accumulate).toBe(1);
    expect(one.opt.microDispatches(0)).toBe(one.opt.dispatches);
    expect(one.opt.accumulatorBytes).toBe(0);
    expect(() => one.opt.microDispatches(1)).toThrow(/micro-batch 1 of 1/);
    for (let s = 0; s < 2; s++) {
      plain.opt.nextStep();
      plain.step.setBatch(LORA.batch);
      await plain.step.run(plain.opt.dispatches);
      expect(await optimizerStep(one, [LORA.batch])).toBe(await plain.step.readLoss());
    }
    for (const name of plain.model.trainableNames) {
      expect(await one.model.readParam(name), name).toEqual(await plain.model.readParam(name));
    }
    expect((await one.opt.readState()).moments).toEqual((await plain.opt.readState()).moments);

    // N = 3: copy, add, then mean + norm + AdamW; one f32 accumulator per trainable, as planned.
    const three = await ModelOptimizer.create(plain.model, { ...LORA.optimizer, accumulate: 3 });
    const tensors = plain.model.trainableNames.length;
    expect([0, 1, 2].map((k) => three.microDispatches(k).length)).toEqual([
      tensors,
      tensors,
      tensors + three.dispatches.length,
    ]);
    // A shorter step (an epoch's remainder): a lone micro-batch is the plain step.
    expect(three.microDispatches(0, 1)).toBe(three.dispatches);
    expect(three.microDispatches(1, 2)).not.toBe(three.microDispatches(2));
    expect(() => three.microDispatches(0, 4)).toThrow(/accumulate 3/);
    const plan = (accumulate: number) =>
      planMemory({
        config: LORA.config,
        weightFormat: 'f32',
        loraRank: LORA.lora!.r,
        loraTargets: LORA.lora!.targets,
        packLength: LORA.batch.inputIds[0].length,
        packsPerStep: 2,
        recompute: false,
        trainable: LORA.trainable,
        objective: LORA.objective,
        functionsPerStep: 8,
        accumulate,
      }).trainable;
    expect(plan(1)).toBe(plain.model.gradBytes + plain.opt.momentBytes);
    expect(plan(3)).toBe(plain.model.gradBytes + three.momentBytes + three.accumulatorBytes);
    expect(three.accumulatorBytes).toBe(plain.model.gradBytes);
    for (const bad of [0, 1.5]) {
      await expect(ModelOptimizer.create(plain.model, { lr: 1e-3, accumulate: bad })).rejects.toThrow(
        /accumulate must be/,
      );
    }
    three.destroy();
    plain.destroy();
    one.destroy();
  });

  it('a NaN or Inf in either micro-batch skips the update; the next step is normal', async () => {
    const m = await build(LORA, 1, 2);
    const micro = [packOf(LORA.batch, 0), packOf(LORA.batch, 1)];
    await optimizerStep(m, micro); // non-zero moments to protect
    const name = m.model.trainableNames[0];
    for (const [bad, value] of [
      [1, NaN],
      [0, Infinity],
    ] as const) {
      const params = await m.readParams();
      const state = await m.opt.readState();
      // One element of one gradient turns non-finite after micro-batch `bad`'s backward.
      const poison = await fill(m.ctx, m.model.grad(name), 1, value);
      m.opt.nextStep();
      for (const [k, batch] of micro.entries()) {
        m.step.setBatch(batch);
        const after = m.opt.microDispatches(k);
        await m.step.run(k === bad ? [poison, ...after] : after);
      }
      const { nonFinite, scale } = await m.opt.readGradNorm();
      expect(nonFinite, `micro-batch ${bad}`).toBe(true);
      expect(scale).toBe(0);
      expect(await m.readParams()).toEqual(params);
      expect((await m.opt.readState()).moments).toEqual(state.moments);
    }
    const params = await m.readParams();
    await optimizerStep(m, micro);
    expect((await m.opt.readGradNorm()).nonFinite).toBe(false);
    expect((await m.model.readParam(name)).some((v, i) => v !== params.get(name)![i])).toBe(true);
    m.destroy();
  });
});
