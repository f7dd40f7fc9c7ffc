/**
 * The tiny Llama-family checkpoints (tests/fixtures/families/) loaded straight onto the GPU through
 * `loadModelToGpu`: from safetensors the engine's logits are the float64 reference forward of the
 * very weights loaded (next-token and classification heads, LoRA as a run starts it), and the
 * llama.cpp Q8_0 GGUF copy gives the safetensors logits within the q8_0 tolerance — which it could not
 * with llama's q/k rows left permuted. StarCoder2's sliding window (16) is shorter than the snippet.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeDecoder, type ModelConfig } from '../../src/engine/model/decoder.ts';
import type { LoraConfig } from '../../src/engine/model/config.ts';
import type { LlamaFamily } from '../../src/engine/model/llama-family.ts';
import { TrainStep } from '../../src/engine/model/train-step.ts';
import type { WeightFormat } from '../../src/engine/quant.ts';
import { forwardRef } from '../../src/engine/reference/model.ts';
import { parseConfigJson } from '../../src/io/config.ts';
import { loadModelToGpu } from '../../src/io/load-gpu.ts';
import type { CheckpointFormat } from '../../src/io/load.ts';
import type { Objective } from '../../src/shared/batch.ts';
import { initialTrainables } from '../../src/train/init.ts';
import { useGpu } from '../helpers/gpu.ts';
import { batchOf, FAMILIES, familyDir, familyFiles, JAVA, loadParams } from './helpers/families.ts';
import { relativeError } from '../helpers/relative-error.ts';

const gpu = useGpu();

/** LoRA r 2 on every target of the family, as a run adds it (B zero: the base model's logits). */
const loraOf = (config: ModelConfig): LoraConfig => ({
  r: 2,
  alpha: 4,
  dropout: 0,
  targets: describeDecoder(config).loraTargets,
});

const TOKENS = 40;

async function gpuLogits(
  family: LlamaFamily,
  prefer: CheckpointFormat,
  weightFormat: WeightFormat,
  objective: Objective,
): Promise<{ logits: Float32Array; ids: number[]; config: ModelConfig }> {
  const lora = loraOf(parseConfigJson(readFileSync(join(familyDir(family), 'config.json'), 'utf8')));
  const { model, tokenizer, config, loaded } = await loadModelToGpu(gpu(), familyFiles(family), {
    weightFormat,
    prefer,
    objective,
    trainable: 'lora',
    mode: 'packed',
    lora,
    initial: (c) => initialTrainables(c, lora, objective === 'cls', 7),
  });
  try {
    expect(loaded.format).toBe(prefer);
    const ids = tokenizer!.encode(JAVA).slice(0, TOKENS);
    const step = await TrainStep.create(model, { packs: 1, packLength: ids.length, maxFunctions: 1 });
    try {
      step.setBatch(batchOf(ids));
      return { logits: await step.forwardLogits(), ids, config };
    } finally {
      step.destroy();
    }
  } finally {
    model.destroy();
  }
}

describe.each(FAMILIES)('%s loaded onto the GPU', (family) => {
  it.each(['ntp', 'cls'] as const)(
    'from safetensors (%s): the engine’s logits are the float64 forward of the loaded weights',
    async (objective) => {
      const { logits, ids, config } = await gpuLogits(family, 'safetensors', 'f32', objective);
      const { params } = await loadParams(family, 'safetensors', 'f32', objective);
      const lora = loraOf(config);
      for (const [name, v] of initialTrainables(config, lora, objective === 'cls', 7)) {
        params.set(name, Float64Array.from(v));
      }
      const want = forwardRef({ config, lora, mode: 'packed' }, params, batchOf(ids), objective).logits;
      expect(logits.length).toBe(objective === 'cls' ? 2 : ids.length * describeDecoder(config).vocab);
      const err = relativeError(logits, want);
      console.log(`${family} ${objective}: GPU vs float64 ${err.toExponential(2)}`);
      // f32 rounding over 2 blocks, as tests/gpu/model-load.test.ts holds GPT-BigCode (measured
      // 0.8e-7 to 5.4e-7 on lavapipe).
      expect(err).toBeLessThan(1e-5);
    },
  );

  it('from the llama.cpp Q8_0 GGUF: the safetensors logits within the q8_0 tolerance', async () => {
    const ref = await gpuLogits(family, 'safetensors', 'f32', 'ntp');
    const q = await gpuLogits(family, 'gguf', 'q8_0', 'ntp');
    expect(q.ids).toEqual(ref.ids);
    const err = relativeError(q.logits, ref.logits);
    console.log(`${family}: GGUF q8_0 vs safetensors f32 ${err.toExponential(2)}`);
    // As tests/io/families.test.ts on the CPU (measured 1.3e-2 to 1.9e-2 there): the GGUF's
    // embeddings and LM head are Q8_0 too.
    expect(err).toBeLessThanOrEqual(3e-2);
  });
});
