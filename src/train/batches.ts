/**
 * A run's examples as the engine's fixed-shape step batches, and scoring with a step's forward.
 * Shared by training runs and detectors (evaluation and scanning with an imported adapter), so both
 * pack and score functions the same way.
 */
import type { TrainStep } from '../engine/index.ts';
import type { PackedBatch } from '../shared/batch.ts';
import { makeBatches, type Batch, type BatchMode } from '../data/batching.ts';
import type { ScoredExample } from './evaluate.ts';
import type { NtpAnswers, RunExample } from './types.ts';

export interface StepPacking {
  mode: BatchMode;
  /** The step's shape: `packs` rows of `packLength` tokens. */
  packs: number;
  packLength: number;
  maxFunctionsPerPack: number;
  separatorId: number;
  padId: number;
  seed: number;
}

/** The batches of one pass over `examples` (shuffled per epoch when training). */
export function stepBatches(
  examples: readonly RunExample[],
  packing: StepPacking,
  epoch: number,
  shuffle: boolean,
): Batch[] {
  // Padded rows are for training ablations; scoring always packs (same scores, fewer steps).
  const mode = packing.mode === 'padded' && !shuffle ? 'packed' : packing.mode;
  return makeBatches(
    examples.map((e, i) => ({ tokens: e.tokens, label: e.label, weight: e.weight, exampleIndex: i })),
    {
      mode,
      packLength: packing.packLength,
      separatorId: packing.separatorId,
      padId: packing.padId,
      seed: packing.seed,
      epoch,
      shuffle,
      maxFunctionsPerPack: packing.maxFunctionsPerPack,
      rowsPerBatch: packing.packs,
      padTo: 'pack-length',
    },
  ).batches;
}

/**
 * The data layer's batch as the engine's packed batch, padded with empty rows to the step shape.
 * A function's loss weight is its sample weight times `positiveWeight` when it is vulnerable.
 */
export function toPackedBatch(
  batch: Batch,
  examples: readonly RunExample[],
  packing: Pick<StepPacking, 'packs' | 'packLength' | 'padId'>,
  positiveWeight = 1,
): PackedBatch {
  const { packs, packLength, padId } = packing;
  const rows = (source: Int32Array, fill: number) =>
    Array.from({ length: packs }, (_, r) =>
      r < batch.rows
        ? Array.from(source.subarray(r * packLength, (r + 1) * packLength))
        : new Array<number>(packLength).fill(fill),
    );
  return {
    inputIds: rows(batch.inputIds, padId),
    segmentIds: rows(batch.segmentIds, -1),
    positionIds: rows(batch.positionIds, 0),
    functions: batch.functions.map((f) => ({
      pack: f.pack,
      last: f.last - f.pack * packLength,
      label: f.label,
      weight: examples[f.exampleIndex].weight * (f.label === 1 ? positiveWeight : 1),
    })),
  };
}

/**
 * Probability of "vulnerable" for every example (forward only, no dropout), in input order: from the
 * classification head, or (next-token objective, `answers` given) from the " YES" and " NO" logits at
 * each prompt's last token.
 */
export async function scoreExamples(
  step: TrainStep,
  examples: readonly RunExample[],
  packing: StepPacking,
  answers?: NtpAnswers,
): Promise<ScoredExample[]> {
  const scores = new Float64Array(examples.length);
  for (const batch of stepBatches(examples, packing, 0, false)) {
    step.setBatch(toPackedBatch(batch, examples, packing));
    let logits: Float32Array;
    if (answers) {
      // `last` is the flattened token row of the batch, the engine's row layout.
      logits = await step.forwardNtpLogitsAt(
        batch.functions.flatMap((f) => [[f.last, answers.no] as const, [f.last, answers.yes] as const]),
      );
    } else {
      await step.evaluate();
      logits = await step.readClsLogits();
    }
    batch.functions.forEach((f, i) => {
      // p(vulnerable) = softmax(logits)[1] = sigmoid(l1 − l0); l0 = "not vulnerable" (" NO").
      scores[f.exampleIndex] = 1 / (1 + Math.exp(logits[2 * i] - logits[2 * i + 1]));
    });
  }
  return examples.map((e, i) => ({
    score: scores[i],
    label: e.label,
    cwe: e.cwe,
    exampleIndex: e.exampleIndex,
  }));
}
