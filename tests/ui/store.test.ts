/** Store logic without a browser: config layering for a loaded model, history selection, saved-run sources. */
import { describe, expect, it } from 'vitest';
import { findPreset } from '../../src/io/presets.ts';
import { configForModel, resolveConfig } from '../../src/train/config.ts';
import { RunHistory } from '../../src/train/history.ts';
import { chartMarkers, draftForModel, finishedRun, latestStep, modelSourceOf } from '../../src/ui/store.ts';
import type { RunSummary } from '../../src/worker/protocol.ts';

describe('draftForModel', () => {
  it('layers a preset’s defaults under what the user changed, as the CLI does', () => {
    const partials = [
      {},
      { optimizer: { lr: 1e-3 }, batching: { packLength: 128 }, epochs: 1 },
      { lora: { r: 4 }, weightFormat: 'q4_0', seed: 11 },
    ];
    for (const partial of partials) {
      // The lab: a draft from a #config= link, then the model is loaded.
      const lab = draftForModel(resolveConfig(partial), 'demo');
      // The CLI: `train --model demo --config partial.json`.
      const cli = configForModel(findPreset('demo')!.runDefaults, partial);
      expect(lab).toEqual(cli);
    }
    const demo = draftForModel(resolveConfig({}), 'demo');
    expect(demo).toMatchObject({
      weightFormat: 'f32',
      epochs: 5,
      optimizer: { lr: 3e-3, embeddingLr: 3e-2 },
    });
    expect(demo.lora.targets).toContain('wte');
  });

  it('leaves the draft alone for a model without defaults', () => {
    const draft = resolveConfig({ optimizer: { lr: 3e-4 } });
    expect(draftForModel(draft, 'someone/some-model')).toEqual({ ...draft, model: 'someone/some-model' });
  });
});

describe('saved runs', () => {
  it('selects chart markers and the latest step from a run’s history', () => {
    const history = {
      steps: [{ step: 1, epoch: 0, loss: 0.7, lr: 1e-3, gradNorm: 1, tokensPerSecond: 50 }],
      evals: [],
      markers: [{ step: 4, path: 'optimizer.lr', value: 5e-4 }],
    };
    expect(chartMarkers(history)).toEqual([{ step: 4, label: 'lr → 5e-4' }]);
    expect(chartMarkers(history, 2)).toEqual([
      { step: 2, label: 'resumed' },
      { step: 4, label: 'lr → 5e-4' },
    ]);
    // Restored steps count until a step arrives.
    expect(latestStep({ history, arrivals: [] })).toMatchObject({ step: 1, loss: 0.7 });
    expect(latestStep({ history, arrivals: [{ step: 2, loss: 0.5, at: 9 }] })).toEqual({
      step: 2,
      loss: 0.5,
      at: 9,
    });
  });

  it('knows how to load a saved run’s model again, except a folder from this computer', () => {
    expect(modelSourceOf({ model: { kind: 'demo' } })).toEqual({ kind: 'demo' });
    expect(modelSourceOf({ model: { kind: 'hub', repo: 'a/b', revision: 'main' } })).toEqual({
      kind: 'hub',
      repo: 'a/b',
      revision: 'main',
    });
    expect(modelSourceOf({ model: { kind: 'files', name: 'my-model' } })).toBeUndefined();
  });

  it('keeps a resumed run’s restored and new losses in its result', () => {
    const metrics = {
      n: 2,
      positives: 1,
      rocAuc: 1,
      prAuc: 1,
      prAucTrapezoid: 1,
      atThreshold: {
        threshold: 0.5,
        precision: 1,
        recall: 1,
        f1: 1,
        confusion: { tp: 1, fp: 0, tn: 1, fn: 0 },
      },
      selfTunedF1: {
        threshold: 0.5,
        precision: 1,
        recall: 1,
        f1: 1,
        confusion: { tp: 1, fp: 0, tn: 1, fn: 0 },
      },
      perCwe: {},
      roc: { x: [0, 1], y: [0, 1] },
      pr: { x: [0, 1], y: [1, 1] },
    };
    const summary = {
      steps: 3,
      bestStep: 2,
      threshold: 0.5,
      validation: metrics,
      test: metrics,
      scores: [],
      throughput: { tokensPerSecond: 1, examplesPerSecond: 1, trainMs: 30 },
      history: [],
      curves: undefined,
    } as unknown as RunSummary;
    // The worker's history of a resumed run: from step 1, restored and new steps alike.
    const history = RunHistory.empty();
    for (const step of [1, 2, 3]) {
      history.record({
        type: 'step',
        step,
        epoch: 0,
        loss: step,
        lr: 1,
        gradNorm: 1,
        tokensPerSecond: 1,
        examplesPerSecond: 1,
        gpuBytes: 0,
        elapsedMs: step,
      });
    }
    summary.curves = history.view();
    const live = {
      id: 'r',
      name: 'r',
      config: resolveConfig({}),
      phase: 'finished' as const,
      startedAt: 0,
      warnings: [],
      history: summary.curves,
      arrivals: [{ step: 3, loss: 3, at: 5 }],
      markers: [],
      stepsPerEpoch: 3,
    };
    const run = finishedRun('r', 'r', live, summary, 'demo', 'slice.jsonl');
    expect(run.loss).toEqual([1, 2, 3].map((step) => ({ step, loss: step })));
    expect(run).toMatchObject({ state: 'finished', steps: 3, bestStep: 2, dataset: 'slice.jsonl' });
  });
});
