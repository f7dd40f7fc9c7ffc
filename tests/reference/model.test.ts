import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeDecoder } from '../../src/engine/model/decoder.ts';
import { parseGoldenCase, type GoldenCase } from '../../src/engine/model/golden.ts';
import {
  forwardRef,
  globalNorm,
  lossAndGradsRef,
  trainRef,
  type ParamMap,
} from '../../src/engine/reference/model.ts';
import { ntpTargets } from '../../src/engine/reference/loss.ts';

const DIR = new URL('../fixtures/engine/', import.meta.url);
const cases: GoldenCase[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => parseGoldenCase(JSON.parse(readFileSync(new URL(f, DIR), 'utf8'))));

/** Float64 vs float64 with different summation orders: agreement to ~1e-12 of the scale is expected. */
const TOL = 1e-9;

function relErr(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  let err = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    err = Math.max(err, Math.abs(actual[i] - expected[i]));
  }
  return err / Math.max(scale, 1e-300);
}

const copy = (m: ParamMap): ParamMap => new Map([...m].map(([k, v]) => [k, v.slice()]));

describe('float64 model reference vs PyTorch golden fixtures', () => {
  it('has fixtures to compare against: GPT-BigCode and every Llama family', () => {
    expect(cases.length).toBeGreaterThanOrEqual(5);
    const families = new Set(cases.map((gc) => describeDecoder(gc.config).family));
    expect([...families].sort()).toEqual(['gpt_bigcode', 'llama', 'qwen2', 'starcoder2']);
  });

  for (const gc of cases) {
    describe(gc.name, () => {
      const spec = { config: gc.config, lora: gc.lora, mode: gc.mode };
      const options = { objective: gc.objective, focal: gc.focal };

      it('forward: final hidden states and logits', () => {
        const fwd = forwardRef(spec, gc.params, gc.batch, gc.objective);
        if (gc.expected.lastHiddenState)
          expect(relErr(fwd.hidden, gc.expected.lastHiddenState)).toBeLessThan(TOL);
        expect(relErr(fwd.logits, gc.expected.logits)).toBeLessThan(TOL);
      });

      it('loss, gradients of every trainable tensor and their global norm', () => {
        const { loss, grads } = lossAndGradsRef(spec, gc.params, gc.batch, options);
        expect(Math.abs(loss - gc.expected.loss) / Math.abs(gc.expected.loss)).toBeLessThan(TOL);
        for (const name of gc.expected.trainable) {
          const g = grads.get(name);
          expect(g, name).toBeDefined();
          const err = relErr(g!, gc.expected.grads.get(name)!);
          expect(err, name).toBeLessThan(TOL);
        }
        const norm = globalNorm(gc.expected.trainable.map((n) => grads.get(n)!));
        expect(Math.abs(norm - gc.expected.gradNorm) / gc.expected.gradNorm).toBeLessThan(TOL);
        if (gc.objective === 'ntp' && gc.expected.ntpLossTokens !== null) {
          const L = gc.batch.inputIds[0].length;
          const targets = ntpTargets(gc.batch.inputIds.flat(), gc.batch.segmentIds.flat(), L, gc.mode);
          expect(targets.filter((t) => t >= 0).length).toBe(gc.expected.ntpLossTokens);
        }
      });

      it('three clipped AdamW steps: losses, norms and parameters after', () => {
        const params = copy(gc.params);
        const records = trainRef(spec, params, gc.batch, {
          ...options,
          ...gc.optimizer,
          trainable: gc.expected.trainable,
        });
        records.forEach((r, s) => {
          const e = gc.expected.steps[s];
          expect(Math.abs(r.loss - e.loss) / Math.abs(e.loss), `step ${s} loss`).toBeLessThan(TOL);
          expect(Math.abs(r.grad_norm - e.grad_norm) / e.grad_norm, `step ${s} norm`).toBeLessThan(TOL);
          if (e.clipped !== undefined) expect(r.grad_norm > gc.optimizer.max_grad_norm).toBe(e.clipped);
        });
        for (const name of gc.expected.trainable) {
          // Compare the update (after − before): the parameters themselves hide an error in the step.
          const before = gc.params.get(name)!;
          const want = gc.expected.paramsAfter.get(name)!.map((v, i) => v - before[i]);
          const got = params.get(name)!.map((v, i) => v - before[i]);
          expect(relErr(got, want), name).toBeLessThan(1e-7);
        }
      });
    });
  }
});

describe('packed targets', () => {
  it('next-token targets stay inside a segment (packed) or a pack (paper)', () => {
    const ids = [10, 11, 12, 13, 14, 15, 16, 17];
    const seg = [0, 0, 1, 1, -1, 0, 0, -1];
    expect([...ntpTargets(ids, seg, 4, 'packed')]).toEqual([11, -1, 13, -1, -1, 16, -1, -1]);
    expect([...ntpTargets(ids, seg, 4, 'paper')]).toEqual([11, 12, 13, -1, -1, 16, -1, -1]);
  });
});
