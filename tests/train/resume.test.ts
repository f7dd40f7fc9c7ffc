/**
 * Resume equivalence: a run stopped at a checkpoint (written to bytes and read back, as after a
 * killed process) and resumed continues to the same weights, Adam moments and scores as the run that
 * never stopped — bit for bit, LoRA dropout included.
 */
import { describe, expect, it } from 'vitest';
import { NodeDirModelFiles } from '../../src/io/node-files.ts';
import { checkpointFiles, readCheckpoint, type RunCheckpoint } from '../../src/train/checkpoint.ts';
import { configForModel } from '../../src/train/config.ts';
import { loadRunModel, prepareRunData } from '../../src/train/prepare.ts';
import { TrainingRun, type RunEvent } from '../../src/train/run.ts';
import { demoSlice } from '../helpers/demo-data.ts';
import { useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

async function setup() {
  const prepared = await loadRunModel(new NodeDirModelFiles('public/models/demo'), 'demo');
  const records = await demoSlice(12, 6);
  const config = configForModel(undefined, {
    weightFormat: 'f32',
    lora: { dropout: 0.1 },
    optimizer: { lr: 1e-3 },
    // Two micro-batches of one pack per optimizer step: accumulation is part of the resumed state.
    batching: { packLength: 256, packsPerStep: 1, accumulate: 2 },
    epochs: 2,
    evalEvery: 0,
    checkpointEvery: 2,
    truncation: 'head',
  });
  const { data } = prepareRunData(records, prepared.tokenizer, config, 256);
  return { prepared, config, data };
}

async function roundTrip(checkpoint: RunCheckpoint): Promise<RunCheckpoint> {
  const [json, tensors] = checkpointFiles(checkpoint);
  return readCheckpoint(new TextDecoder().decode(json.bytes), tensors.bytes);
}

function expectSameTensors(a: Map<string, Float32Array>, b: Map<string, Float32Array>) {
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  for (const [name, values] of a)
    expect(Buffer.from(b.get(name)!.buffer), name).toEqual(Buffer.from(values.buffer));
}

describe('run checkpoints', () => {
  it('a resumed run reaches the same weights, moments and scores as an uninterrupted one', async () => {
    const { prepared, config, data } = await setup();
    const whole: RunCheckpoint[] = [];
    const uninterrupted = await TrainingRun.create(gpu(), config, prepared.model, data, undefined, {
      onCheckpoint: async (c) => void whole.push(await roundTrip(c)),
    });
    const full = await uninterrupted.run().finally(() => uninterrupted.destroy());
    expect(full.steps).toBeGreaterThanOrEqual(6);
    const micro = whole[1].batch - whole[0].batch;
    expect(micro).toBe(4); // 2 optimizer steps × 2 micro-batches between checkpoints
    const resumeFrom = whole[0];
    expect(resumeFrom.step).toBe(2);

    const events: RunEvent[] = [];
    const later: RunCheckpoint[] = [];
    const resumed = await TrainingRun.create(gpu(), config, prepared.model, data, (e) => events.push(e), {
      resume: resumeFrom,
      onCheckpoint: async (c) => void later.push(await roundTrip(c)),
    });
    const rest = await resumed.run().finally(() => resumed.destroy());
    expect(events.find((e) => e.type === 'started')).toMatchObject({ resumedAt: 2 });
    expect(events.filter((e) => e.type === 'step').map((e) => e.step)[0]).toBe(3);
    expect(rest.steps).toBe(full.steps);
    // Every later checkpoint of the resumed run equals the uninterrupted run's at the same step.
    expect(later.map((c) => c.step)).toEqual(whole.slice(1).map((c) => c.step));
    for (const [i, c] of later.entries()) {
      const reference = whole[i + 1];
      expect([c.epoch, c.batch, c.dropoutStep]).toEqual([
        reference.epoch,
        reference.batch,
        reference.dropoutStep,
      ]);
      expectSameTensors(reference.trainables, c.trainables);
      for (const [name, { m, v }] of reference.optimizer.moments) {
        expect(Buffer.from(c.optimizer.moments.get(name)!.m.buffer), `m ${name}`).toEqual(
          Buffer.from(m.buffer),
        );
        expect(Buffer.from(c.optimizer.moments.get(name)!.v.buffer), `v ${name}`).toEqual(
          Buffer.from(v.buffer),
        );
      }
    }
    expect(rest.bestStep).toBe(full.bestStep);
    expectSameTensors(full.trainables, rest.trainables);
    expect(rest.test.rocAuc).toBe(full.test.rocAuc);
    expect(rest.scores).toEqual(full.scores);
  }, 900_000);

  it('refuses a checkpoint of other data or a damaged one, saying what to do', async () => {
    const { prepared, config, data } = await setup();
    let saved: RunCheckpoint | undefined;
    const run = await TrainingRun.create(gpu(), { ...config, epochs: 1 }, prepared.model, data, undefined, {
      onCheckpoint: async (c) => void (saved ??= c),
    });
    await run.run().finally(() => run.destroy());
    const other = { ...data, train: data.train.slice(1) };
    await expect(
      TrainingRun.create(gpu(), config, prepared.model, other, undefined, { resume: saved }),
    ).rejects.toThrow(/another training set/);
    const [json, tensors] = checkpointFiles(saved!);
    await expect(readCheckpoint('{"format":"x"}', tensors.bytes)).rejects.toThrow(
      /not a VulnLab run checkpoint/,
    );
    await expect(
      readCheckpoint(new TextDecoder().decode(json.bytes), tensors.bytes.subarray(0, 40)),
    ).rejects.toThrow(/damaged/);
  }, 600_000);
});
