/**
 * Pretrains the demo model with next-token prediction on a generated Java corpus, using the lab's own
 * engine (full finetuning, packed batches, AdamW with warmup + cosine). A randomly initialised model has
 * near-uniform attention and its last-token state hardly depends on the code; after pretraining its
 * states carry the code's content, which is what LoRA finetuning then adapts — as with a real code LLM.
 */
import { createNodeContext } from '../../src/engine/gpu/node.ts';
import type { GptBigCodeConfig } from '../../src/engine/model/config.ts';
import { GptBigCodeGpu, TrainStep } from '../../src/engine/model/gpt-bigcode.ts';
import { ModelOptimizer } from '../../src/engine/model/optimizer.ts';
import { makeBatches } from '../../src/data/batching.ts';
import { learningRate } from '../../src/train/schedule.ts';

export interface PretrainOptions {
  steps: number;
  packLength: number;
  packsPerStep: number;
  lr: number;
  seed: number;
  eosId: number;
  padId: number;
}

export async function pretrain(
  config: GptBigCodeConfig,
  weights: ReadonlyMap<string, Float32Array>,
  documents: number[][],
  o: PretrainOptions,
): Promise<Map<string, Float32Array>> {
  const ctx = await createNodeContext();
  const model = await GptBigCodeGpu.create(
    ctx,
    {
      config,
      lora: null,
      mode: 'packed',
      objective: 'ntp',
      trainable: 'all',
      weightFormat: 'f32',
      seed: o.seed,
    },
    weights,
  );
  const step = await TrainStep.create(model, { packs: o.packsPerStep, packLength: o.packLength });
  const optimizer = await ModelOptimizer.create(model, { lr: o.lr, weight_decay: 0.01, max_grad_norm: 1 });
  const examples = documents.map((tokens, i) => ({
    tokens: tokens.slice(0, o.packLength - 1),
    label: 0 as const,
    exampleIndex: i,
  }));
  const schedule = { kind: 'cosine' as const, warmupRatio: 0.05 };
  let done = 0;
  for (let epoch = 0; done < o.steps; epoch++) {
    const { batches } = makeBatches(examples, {
      mode: 'packed',
      packLength: o.packLength,
      separatorId: o.eosId,
      padId: o.padId,
      seed: o.seed,
      epoch,
      rowsPerBatch: o.packsPerStep,
      padTo: 'pack-length',
    });
    for (const batch of batches) {
      if (done >= o.steps || batch.rows < o.packsPerStep) break;
      const rows = (a: Int32Array) =>
        Array.from({ length: batch.rows }, (_, r) =>
          Array.from(a.subarray(r * o.packLength, (r + 1) * o.packLength)),
        );
      step.setBatch({
        inputIds: rows(batch.inputIds),
        segmentIds: rows(batch.segmentIds),
        positionIds: rows(batch.positionIds),
        functions: [],
      });
      optimizer.nextStep(learningRate(schedule, o.lr, done, o.steps));
      await step.run(optimizer.dispatches);
      done++;
      if (done % 25 === 0 || done === o.steps)
        console.log(`pretrain step ${done}/${o.steps} loss ${(await step.readLoss()).toFixed(3)}`);
    }
  }
  const out = new Map<string, Float32Array>();
  for (const name of weights.keys()) out.set(name, await model.readParam(name));
  step.destroy();
  optimizer.destroy();
  model.destroy();
  ctx.destroy();
  return out;
}
