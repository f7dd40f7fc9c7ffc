/**
 * The next-token objective: the paper's prompt wraps each function, training appends the answer
 * token, and a function's score compares the " YES" and " NO" logits at the prompt's last token —
 * checked against the float64 reference forward; the exported CAUSAL_LM adapter scores the same.
 */
import { describe, expect, it } from 'vitest';
import { forwardRef } from '../../src/engine/reference/model.ts';
import { NodeDirModelFiles } from '../../src/io/node-files.ts';
import { configForModel } from '../../src/train/config.ts';
import { Detector } from '../../src/train/detector.ts';
import { exportPeftAdapter, importPeftAdapter } from '../../src/train/export.ts';
import { loadRunModel, NTP_PROMPT, prepareRunData } from '../../src/train/prepare.ts';
import { TrainingRun, type RunEvent } from '../../src/train/run.ts';
import { demoSlice } from '../helpers/demo-data.ts';
import { useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

describe('the next-token objective', async () => {
  const prepared = await loadRunModel(new NodeDirModelFiles('public/models/demo'), 'demo');
  const records = await demoSlice(12, 6);
  const config = configForModel(undefined, {
    objective: 'ntp',
    weightFormat: 'f32',
    optimizer: { lr: 2e-3 },
    batching: { packLength: 128, packsPerStep: 2 },
    epochs: 1,
    evalEvery: 0,
    truncation: 'head',
  });
  const { data } = prepareRunData(records, prepared.tokenizer, config, 128);

  it('wraps every function in the paper’s prompt, within the pack', () => {
    const before = prepared.tokenizer.encode(NTP_PROMPT.before);
    const after = prepared.tokenizer.encode(NTP_PROMPT.after);
    expect(data.answers).toBeDefined();
    for (const e of [...data.train, ...data.test]) {
      expect([...e.tokens.subarray(0, before.length)]).toEqual(before);
      expect([...e.tokens.subarray(e.tokens.length - after.length)]).toEqual(after);
      // Prompt + answer + separator fit the pack.
      expect(e.tokens.length + 2).toBeLessThanOrEqual(128);
    }
    const text = prepared.tokenizer.decode([...data.test[0].tokens]);
    expect(text.startsWith('Question: ')).toBe(true);
    expect(text.endsWith('\n\nAnswer:')).toBe(true);
  });

  it('trains, scores by the answer logits as the float64 reference does, and exports a CAUSAL_LM adapter', async () => {
    const events: RunEvent[] = [];
    const run = await TrainingRun.create(gpu(), config, prepared.model, data, (e) => events.push(e));
    try {
      const result = await run.run();
      const losses = events.flatMap((e) => (e.type === 'step' ? [e.loss] : []));
      expect(losses.length).toBe(result.steps);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(result.trainables.has('score.weight')).toBe(false);
      expect(result.test.n).toBe(data.test.length);
      expect(() => run.update('loss.gamma', 2)).toThrow(/next-token prediction/);

      // The reference forward of one test prompt with the run's weights.
      const example = data.test[0];
      const params = new Map<string, Float64Array>();
      for (const [name, values] of prepared.model.weights) params.set(name, Float64Array.from(values));
      for (const [name, values] of result.trainables) params.set(name, Float64Array.from(values));
      const ids = [...example.tokens, prepared.model.separatorId];
      const { logits } = forwardRef(
        {
          config: prepared.model.config,
          lora: { r: config.lora.r, alpha: config.lora.alpha, dropout: 0, targets: config.lora.targets },
          mode: 'packed',
        },
        params,
        {
          inputIds: [ids],
          segmentIds: [ids.map(() => 0)],
          positionIds: [ids.map((_, i) => i)],
          functions: [],
        },
        'ntp',
      );
      const V = prepared.model.config.vocab_size;
      const last = (example.tokens.length - 1) * V;
      const { yes, no } = data.answers!;
      const expected = 1 / (1 + Math.exp(logits[last + no] - logits[last + yes]));
      const scored = result.scores.find((s) => s.split === 'test')!.examples[0];
      expect(scored.exampleIndex).toBe(example.exampleIndex);
      expect(Math.abs(scored.score - expected)).toBeLessThan(1e-4);

      // The exported adapter is a causal-LM one, and a detector made from it scores identically.
      const shapes = new Map([...result.trainables.keys()].map((n) => [n, run.shapeOf(n)]));
      const [configFile, weightsFile] = exportPeftAdapter(result.trainables, shapes, config, 'demo');
      const adapterConfig = JSON.parse(new TextDecoder().decode(configFile.bytes));
      expect(adapterConfig).toMatchObject({ task_type: 'CAUSAL_LM', modules_to_save: null });
      const adapter = await importPeftAdapter(new TextDecoder().decode(configFile.bytes), weightsFile.bytes);
      await expect(Detector.create(gpu(), prepared.model, adapter)).rejects.toThrow(/no classification head/);
      const detector = await Detector.create(gpu(), prepared.model, adapter, {
        packLength: 128,
        answers: data.answers,
      });
      try {
        const again = await detector.score(data.test);
        expect(again.map((s) => s.score)).toEqual(
          result.scores.find((s) => s.split === 'test')!.examples.map((s) => s.score),
        );
      } finally {
        detector.destroy();
      }
    } finally {
      run.destroy();
    }
  }, 600_000);
});
