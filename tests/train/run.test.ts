import { describe, expect, it } from 'vitest';
import { NodeDirModelFiles } from '../../src/io/node-files.ts';
import { configForModel } from '../../src/train/config.ts';
import { Detector } from '../../src/train/detector.ts';
import { loadRunModel, prepareRunData } from '../../src/train/prepare.ts';
import { TrainingRun, type RunEvent } from '../../src/train/run.ts';
import { demoSlice } from '../helpers/demo-data.ts';
import { useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

describe('a training run on the real adapter', () => {
  it('applies live changes from the next step, records them, pauses and resumes', async () => {
    const prepared = await loadRunModel(new NodeDirModelFiles('public/models/demo'), 'demo');
    const records = await demoSlice(16, 8);
    const config = configForModel(undefined, {
      weightFormat: 'f32',
      batching: { packLength: 256, packsPerStep: 2 },
      epochs: 1,
      evalEvery: 2,
      truncation: 'head',
    });
    const { data } = prepareRunData(records, prepared.tokenizer, config, 256);
    const events: RunEvent[] = [];
    const run = await TrainingRun.create(gpu(), config, prepared.model, data, (event) => {
      events.push(event);
      if (event.type === 'step' && event.step === 1) {
        run.update('optimizer.lr', 5e-4);
        expect(() => run.update('batching.packLength', 128)).toThrow(/cannot change during a run/);
        run.pause();
        setTimeout(() => run.resume(), 50);
      }
    });
    try {
      const result = await run.run();
      const steps = events.filter((e) => e.type === 'step');
      expect(steps.length).toBe(result.steps);
      expect(result.steps).toBeGreaterThanOrEqual(3);
      expect(steps.every((s) => Number.isFinite(s.loss) && s.tokensPerSecond > 0)).toBe(true);
      // The change took effect at step 2 and is in the history; lr follows the new peak from then on.
      expect(result.history).toEqual([{ step: 2, path: 'optimizer.lr', value: 5e-4 }]);
      expect(events.find((e) => e.type === 'change')).toMatchObject({ step: 2, path: 'optimizer.lr' });
      expect(steps[1].lr).toBeLessThanOrEqual(5e-4);
      const states = events.filter((e) => e.type === 'state').map((e) => e.state);
      expect(states).toEqual(['running', 'paused', 'running', 'finished']);
      const evals = events.filter((e) => e.type === 'eval' && e.split === 'validation');
      expect(evals.length).toBeGreaterThanOrEqual(1);
      // The validation loss is the training loss on validation: finite, positive, near the train loss.
      for (const e of evals) expect(e.type === 'eval' && e.loss > 0 && e.loss < 10).toBe(true);
      expect(result.test.n).toBe(data.test.length);
      expect(result.validation.intervals?.rocAuc.low).toBeLessThanOrEqual(result.validation.rocAuc ?? 1);
      expect(result.trainables.has('score.weight')).toBe(true);
    } finally {
      run.destroy();
    }
  }, 600_000);

  it('a model streamed from its files trains exactly like one kept in memory', async () => {
    const files = new NodeDirModelFiles('public/models/demo');
    const kept = await loadRunModel(files, 'demo', { weights: 'keep' });
    const streamed = await loadRunModel(files, 'demo', { weights: 'stream' });
    expect(streamed.model.weights.size).toBe(0);
    expect(streamed.model.files).toBeDefined();
    const records = await demoSlice(6, 6);
    const config = configForModel(undefined, {
      weightFormat: 'q8_0',
      batching: { packLength: 128, packsPerStep: 2 },
      epochs: 1,
      truncation: 'head',
    });
    const { data } = prepareRunData(records, kept.tokenizer, config, 128);
    const results = [];
    for (const prepared of [kept, streamed]) {
      const run = await TrainingRun.create(gpu(), config, prepared.model, data);
      results.push(await run.run().finally(() => run.destroy()));
    }
    const [a, b] = results;
    for (const [name, values] of a.trainables) expect(b.trainables.get(name), name).toEqual(values);
    expect(b.scores).toEqual(a.scores);
    // A full-weight adapter replaces base weights, which a streamed model never holds in memory.
    const fullWeights = new Map([
      ['transformer.wte.weight', kept.model.weights.get('transformer.wte.weight') as Float32Array],
      ['score.weight', a.trainables.get('score.weight')!],
    ]);
    const adapter = {
      config: { r: 0, alpha: 0, dropout: 0, targets: [], baseModel: 'demo', taskType: 'SEQ_CLS' },
      tensors: fullWeights,
    };
    await expect(Detector.create(gpu(), streamed.model, adapter)).rejects.toThrow(/cannot be replaced/);
  }, 600_000);

  it('refuses data where ROC AUC is undefined, saying why', async () => {
    const prepared = await loadRunModel(new NodeDirModelFiles('public/models/demo'), 'demo');
    const one = { tokens: Int32Array.from([5, 6, 7]), label: 1 as const, weight: 1, exampleIndex: 0 };
    const config = configForModel(undefined, { weightFormat: 'f32', batching: { packLength: 64 } });
    await expect(
      TrainingRun.create(gpu(), config, prepared.model, {
        train: [one, one],
        validation: [one],
        test: [one],
      }),
    ).rejects.toThrow(/one class only/);
  });
});
