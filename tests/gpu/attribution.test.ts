import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { attributeBatch, type GroupAttribution, type ScoreTerm } from '../../src/engine/model/attribution.ts';
import { DecoderGpu } from '../../src/engine/model/decoder-gpu.ts';
import { describeDecoder } from '../../src/engine/model/decoder.ts';
import { TrainStep } from '../../src/engine/model/train-step.ts';
import { parseGoldenCase, type GoldenCase } from '../../src/engine/model/golden.ts';
import {
  embeddingsRef,
  gradTimesInputRef,
  integratedGradientsRef,
  scoreAtRef,
  scoreInputGradientRef,
  type ScoreOptionsRef,
} from '../../src/engine/reference/attribution.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

const load = (name: string): GoldenCase =>
  parseGoldenCase(
    JSON.parse(readFileSync(new URL(`../fixtures/engine/${name}.json`, import.meta.url), 'utf8')),
  );

// Tolerances. GPU (f32) against the float64 reference: the input gradient runs the whole backward
// (2 blocks, attention, layernorms) like the parameter gradients of model.test.ts (≤ 2.2e-6 of the
// largest value there) and one more layernorm; 1e-4 of the largest |d score/d x0| leaves ~10×
// headroom, and a missing term or wrong row is off by > 1e-2. Margins: 1e-5 of the largest.
const GRAD_TOL = 1e-4;
const MARGIN_TOL = 1e-5;
// float64 central differences with h = 1e-4: truncation h²·f'''/6 ~ 1e-9 and rounding 1e-16/h ~ 1e-12
// against gradients of O(1e-2..1): 1e-5 of the gradient.
const FD_TOL = 1e-5;

async function build(gc: GoldenCase, recompute: boolean) {
  const ctx = gpu();
  const model = await DecoderGpu.create(
    ctx,
    { config: gc.config, lora: gc.lora, mode: gc.mode, objective: gc.objective, trainable: gc.trainable },
    gc.params,
  );
  const step = await TrainStep.create(model, {
    packs: gc.batch.inputIds.length,
    packLength: gc.batch.inputIds[0].length,
    maxFunctions: 8,
    recompute,
  });
  step.setBatch(gc.batch);
  return { model, step, destroy: () => (step.destroy(), model.destroy()) };
}

const spec = (gc: GoldenCase) => ({ config: gc.config, lora: gc.lora, mode: gc.mode });
const sum = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0);

/** The integrated-gradients baseline (every token the pad token) and score(x0) − score(baseline). */
function padBaseline(gc: GoldenCase, padId: number, score: number, options: ScoreOptionsRef) {
  const T = gc.batch.inputIds.flat().length;
  const baseline = embeddingsRef(spec(gc), gc.params, gc.batch, new Array<number>(T).fill(padId));
  return { baseline, delta: score - scoreAtRef(spec(gc), gc.params, gc.batch, baseline, options).score };
}

/** The float64 gradient vs central finite differences of the float64 score, at its `count` largest entries. */
function expectFiniteDifferences(
  gc: GoldenCase,
  x0: Float64Array,
  grad: Float64Array,
  options: ScoreOptionsRef,
  count: number,
): void {
  const order = Array.from(grad.keys()).sort((a, b) => Math.abs(grad[b]) - Math.abs(grad[a]));
  const h = 1e-4;
  for (const i of order.slice(0, count)) {
    const at = (delta: number) => {
      const x = x0.slice();
      x[i] += delta;
      return scoreAtRef(spec(gc), gc.params, gc.batch, x, options).score;
    };
    const numeric = (at(h) - at(-h)) / (2 * h);
    expect(Math.abs(numeric - grad[i]) / Math.abs(grad[i]), `x0[${i}]`).toBeLessThan(FD_TOL);
  }
}

/**
 * Completeness per function: in packed mode a function's tokens reach only its own margin, so its
 * tokens' integrated gradients sum to its margin(x0) − margin(baseline) even though one backward
 * served all functions. Within 2e-2 of the batch's |Δ|; returns the worst share.
 */
function expectCompleteness(gc: GoldenCase, ig: GroupAttribution, delta: number): number {
  const seg = gc.batch.segmentIds.flat();
  const L = gc.batch.inputIds[0].length;
  let worst = 0;
  gc.batch.functions.forEach((f, i) => {
    const mine = Array.from(ig.tokens).filter(
      (_, t) => Math.floor(t / L) === f.pack && seg[t] === seg[f.pack * L + f.last],
    );
    const fDelta = ig.margins[i] - ig.baselineMargins![i];
    worst = Math.max(worst, Math.abs(sum(mine) - fDelta) / Math.abs(delta));
    expect(Math.abs(sum(mine) - fDelta), `function ${i}`).toBeLessThan(2e-2 * Math.abs(delta) + 1e-4);
  });
  return worst;
}

describe('input attributions on the GPU vs the float64 model', { timeout: 600_000 }, () => {
  it('cls, packed, recompute: d(margin)/d(x0), gradient × input and integrated gradients', async () => {
    const gc = load('packed_cls_mqa_gelu');
    const { step, destroy } = await build(gc, true);
    const D = describeDecoder(gc.config).width;
    const terms: ScoreTerm[] = gc.batch.functions.map((_, at) => ({ at, weight: 1 }));
    const options: ScoreOptionsRef = { objective: 'cls', terms };
    const x0 = embeddingsRef(spec(gc), gc.params, gc.batch);
    const want = scoreInputGradientRef(spec(gc), gc.params, gc.batch, x0, options);

    // GPU gradient vs float64.
    const got = await step.scoreInputGradient(terms);
    const gradError = compare(got.grad, want.grad).maxRel;
    expect(gradError).toBeLessThan(GRAD_TOL);
    expect(compare(got.margins, want.margins).maxRel).toBeLessThan(MARGIN_TOL);
    // The weights were not touched: the evaluation forward still gives the same margins.
    await step.evaluate();
    const logits = await step.readClsLogits();
    terms.forEach(({ at }, i) => expect(logits[2 * at + 1] - logits[2 * at]).toBeCloseTo(got.margins[i], 5));

    expectFiniteDifferences(gc, x0, want.grad, options, 6);

    // Gradient × input per token.
    const [gi] = await attributeBatch(step, [terms], { method: 'grad', baselineId: 0 });
    expect(compare(gi.tokens, gradTimesInputRef(want.grad, x0, D)).maxRel).toBeLessThan(GRAD_TOL);

    // Integrated gradients. Float64: the completeness error |Σ attr − Δ| of the midpoint rule falls
    // ~4× per doubling of the steps (O(1/m²)); at 16 steps it is below 1e-2 of |Δ|.
    const padId = gc.batch.inputIds[1][23];
    const { baseline, delta } = padBaseline(gc, padId, want.score, options);
    const errors = [4, 16, 64].map((m) => {
      const ig = integratedGradientsRef(spec(gc), gc.params, gc.batch, x0, baseline, options, m);
      return { m, ig, error: Math.abs(sum(ig) - delta) };
    });
    console.log(
      `IG completeness (float64), Δ = ${delta.toFixed(4)}: ${errors.map((e) => `${e.m} steps ${e.error.toExponential(2)}`).join(', ')}`,
    );
    expect(errors[1].error).toBeLessThan(errors[0].error / 3);
    expect(errors[2].error).toBeLessThan(errors[1].error / 3);
    expect(errors[1].error).toBeLessThan(1e-2 * Math.abs(delta));

    // GPU integrated gradients (16 steps) vs the float64 ones, and completeness per function.
    const [ig] = await attributeBatch(step, [terms], { method: 'ig', steps: 16, baselineId: padId });
    const igError = compare(ig.tokens, errors[1].ig).maxRel;
    expect(igError).toBeLessThan(1e-3);
    const worst = expectCompleteness(gc, ig, delta);
    console.log(
      `GPU vs float64: d/dx0 ${gradError.toExponential(2)}, IG(16) ${igError.toExponential(2)}; per-function completeness ≤ ${worst.toExponential(2)} of |Δ|`,
    );
    destroy();
  });

  it('cls with cross-function attention (paper): one group per function matches the float64 model', async () => {
    const gc = load('paper_cls_mha_tanh');
    const { step, destroy } = await build(gc, false);
    const x0 = embeddingsRef(spec(gc), gc.params, gc.batch);
    for (const at of [0, 3]) {
      const terms = [{ at, weight: 1 }];
      const want = scoreInputGradientRef(spec(gc), gc.params, gc.batch, x0, { objective: 'cls', terms });
      const got = await step.scoreInputGradient(terms);
      expect(compare(got.grad, want.grad).maxRel, `function ${at}`).toBeLessThan(GRAD_TOL);
      expect(Math.abs(got.margins[0] - want.margins[0])).toBeLessThan(
        MARGIN_TOL * Math.abs(want.margins[0]) + 1e-6,
      );
    }
    destroy();
  });

  it('next-token objective: d(YES − NO logit)/d(x0) at each function’s last token', async () => {
    const gc = load('packed_ntp_mqa_tanh');
    const { step, destroy } = await build(gc, false);
    const L = gc.batch.inputIds[0].length;
    const answers = { yes: 7, no: 11 };
    const terms = gc.batch.functions.map((f, i) => ({ at: f.pack * L + f.last, weight: i % 2 ? 1 : 0.5 }));
    const x0 = embeddingsRef(spec(gc), gc.params, gc.batch);
    const want = scoreInputGradientRef(spec(gc), gc.params, gc.batch, x0, {
      objective: 'ntp',
      terms,
      answers,
    });
    const got = await step.scoreInputGradient(terms, { answers });
    expect(compare(got.grad, want.grad).maxRel).toBeLessThan(GRAD_TOL);
    expect(compare(got.margins, want.margins).maxRel).toBeLessThan(MARGIN_TOL);
    // Twice in a row gives the same (the logits buffer is reseeded each time).
    expect((await step.scoreInputGradient(terms, { answers })).grad).toEqual(got.grad);
    destroy();
  });
});

// The Llama family (rotary positions, RMSNorm, SwiGLU, GQA; StarCoder2's sliding window; Qwen2's tied
// head and adapted token embedding): the same checks on each family's packed PyTorch fixture. The
// input gradient runs the whole family backward, whose parameter gradients model.test.ts holds to
// FAMILY_GRAD_TOL = 1e-4 (measured ≤ 4.1e-5); the input gradient gets the same bound.
// Completeness is checked with enough integrated-gradient steps for the midpoint rule's O(1/m²) error
// to be small on each random model. Measured in float64, the worst function's |Σ attr − Δf| at
// 16 / 64 / 256 steps: qwen2 1.7 / 1.2 / 2e-4 (|Δ| = 9.5: a sharp path through its adapted
// embedding); llama 6e-2 at 16 steps, 1e-3 at 64 (|Δ| = 1.3); starcoder2 below 1e-3 at 64.
const FAMILY_CASES = [
  { name: 'llama_packed_cls_gqa', what: 'llama, GQA, untied', completenessSteps: 64 },
  { name: 'starcoder2_packed_cls_window', what: 'starcoder2, sliding window', completenessSteps: 64 },
  {
    name: 'qwen2_packed_ntp_tied',
    what: 'qwen2, next-token, tied head, adapted embedding',
    completenessSteps: 256,
  },
];

describe(
  'input attributions of the Llama family on the GPU vs the float64 model',
  { timeout: 600_000 },
  () => {
    for (const { name, what, completenessSteps } of FAMILY_CASES) {
      it(`${name} (${what}): embeddings, d(score)/d(x0) with finite differences, integrated gradients`, async () => {
        const gc = load(name);
        const { step, destroy } = await build(gc, false);
        const L = gc.batch.inputIds[0].length;
        const answers = gc.objective === 'ntp' ? { yes: 7, no: 11 } : undefined;
        const terms: ScoreTerm[] = gc.batch.functions.map((f, i) => ({
          at: gc.objective === 'cls' ? i : f.pack * L + f.last,
          weight: 1,
        }));
        const options: ScoreOptionsRef = { objective: gc.objective, terms, answers };

        // The embedding output the GPU starts from (token rows, + the token embedding's adapter).
        const x0 = embeddingsRef(spec(gc), gc.params, gc.batch);
        expect(compare(await step.embed(), x0).maxRel).toBeLessThan(1e-6);

        const want = scoreInputGradientRef(spec(gc), gc.params, gc.batch, x0, options);
        const got = await step.scoreInputGradient(terms, { answers });
        const gradError = compare(got.grad, want.grad).maxRel;
        expect(gradError).toBeLessThan(GRAD_TOL);
        expect(compare(got.margins, want.margins).maxRel).toBeLessThan(MARGIN_TOL);

        // The float64 gradient vs central finite differences of the float64 score (rotary positions
        // come from the batch, not from x0: a wrong position would show here).
        expectFiniteDifferences(gc, x0, want.grad, options, 4);

        // Integrated gradients from the pad token (a padding row of the batch, else id 0): GPU vs
        // float64 at 16 steps; and completeness, each function's tokens summing to its own margin's
        // change, at the case's steps (see FAMILY_CASES).
        const padAt = gc.batch.segmentIds.flat().indexOf(-1);
        const padId = padAt >= 0 ? gc.batch.inputIds.flat()[padAt] : 0;
        const { baseline, delta } = padBaseline(gc, padId, want.score, options);
        const wantIg = integratedGradientsRef(spec(gc), gc.params, gc.batch, x0, baseline, options, 16);
        const [ig] = await attributeBatch(step, [terms], {
          method: 'ig',
          steps: 16,
          baselineId: padId,
          answers,
        });
        const igError = compare(ig.tokens, wantIg).maxRel;
        expect(igError).toBeLessThan(1e-3);
        const [fine] = await attributeBatch(step, [terms], {
          method: 'ig',
          steps: completenessSteps,
          baselineId: padId,
          answers,
        });
        const worst = expectCompleteness(gc, fine, delta);
        console.log(
          `${name}: GPU vs float64 d/dx0 ${gradError.toExponential(2)}, IG(16) ${igError.toExponential(2)}; per-function completeness (${completenessSteps} steps) ≤ ${worst.toExponential(2)} of |Δ| = ${Math.abs(delta).toFixed(4)}`,
        );
        destroy();
      });
    }
  },
);
