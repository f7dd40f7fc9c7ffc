/**
 * The model-load check shared by the Node GPU test (tests/gpu/model-load.test.ts) and the page of the
 * browser test (tests/e2e/model-load): load the demo model through `loadModelToGpu`, run the engine's
 * forward on a short Java snippet and read the logits. No Node APIs here: the page bundles it.
 */
import type { GpuContext } from '../../../src/engine/gpu/index.ts';
import { LORA_TARGETS, type LoraConfig } from '../../../src/engine/model/config.ts';
import type { Objective } from '../../../src/engine/model/decoder-gpu.ts';
import { TrainStep } from '../../../src/engine/model/train-step.ts';
import type { WeightFormat } from '../../../src/engine/quant.ts';
import type { PackedBatch } from '../../../src/engine/reference/model.ts';
import type { ModelFiles } from '../../../src/io/files.ts';
import { loadModelToGpu, type GpuLoadedModel } from '../../../src/io/load-gpu.ts';
import type { CheckpointFormat } from '../../../src/io/load.ts';
import { initialTrainables } from '../../../src/train/init.ts';

export const JAVA =
  'public String readFile(String path) throws IOException {\n' +
  '    if (path.contains("..")) throw new IllegalArgumentException(path);\n' +
  '    return Files.readString(Path.of(BASE, path));\n}\n';

/** LoRA as a run adds it: A random, B zero, so the adapted model's logits are the base model's. */
export const LORA: LoraConfig = { r: 2, alpha: 4, dropout: 0, targets: [...LORA_TARGETS] };

/** One pack holding `ids` as one function (labelled vulnerable for the cls head). */
export function batchOf(ids: readonly number[]): PackedBatch {
  return {
    inputIds: [[...ids]],
    segmentIds: [ids.map(() => 0)],
    positionIds: [ids.map((_, i) => i)],
    functions: [{ pack: 0, last: ids.length - 1, label: 1, weight: 1 }],
  };
}

export interface ForwardResult extends Omit<GpuLoadedModel, 'model'> {
  /** ntp: [T, vocab]; cls: [1, 2]. */
  logits: Float32Array;
  ids: number[];
}

/** Loads `checkpoint` from `files` onto the GPU in `weightFormat`, runs one forward, frees everything. */
export async function loadAndForward(
  ctx: GpuContext,
  files: ModelFiles,
  checkpoint: CheckpointFormat,
  weightFormat: WeightFormat,
  objective: Objective = 'ntp',
  tokens = 48,
): Promise<ForwardResult> {
  const { model, ...rest } = await loadModelToGpu(ctx, files, {
    weightFormat,
    prefer: checkpoint,
    lora: LORA,
    objective,
    trainable: 'lora',
    mode: 'packed',
    initial: (config) => initialTrainables(config, LORA, objective === 'cls', 7),
  });
  try {
    const ids = rest.tokenizer!.encode(JAVA).slice(0, tokens);
    const step = await TrainStep.create(model, { packs: 1, packLength: ids.length, maxFunctions: 1 });
    try {
      step.setBatch(batchOf(ids));
      return { ...rest, logits: await step.forwardLogits(), ids };
    } finally {
      step.destroy();
    }
  } finally {
    model.destroy();
  }
}

// Logits relative to the f32 safetensors logits' largest magnitude. Rounding the block linears moves
// them by about the format's relative rounding: f16 2^-11, q8_0 1/254 and q4_0 1/14 of a block's
// largest weight. Measured on lavapipe: f16 1.9e-4, q8_0 4.6e-3, q4_0 7.7e-2 (GGUF: f32 4.5e-3,
// q4_0 8.7e-2); the bounds are about 3x that.
const TOLERANCE: Record<WeightFormat, number> = { f32: 0, f16: 6e-4, q8_0: 1.5e-2, q4_0: 0.25 };

/**
 * Bound on `relativeError(logits, f32 safetensors logits)` of a load. The demo GGUF holds Q8_0
 * linears and F16 embeddings, so even its f32/f16 loads carry the q8_0 error.
 */
export function logitTolerance(checkpoint: CheckpointFormat, weightFormat: WeightFormat): number {
  const own = TOLERANCE[weightFormat];
  return checkpoint === 'gguf' ? Math.max(own, TOLERANCE.q8_0) : own;
}
