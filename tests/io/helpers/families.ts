/**
 * The tiny Llama-family checkpoints of tests/fixtures/families/ (scripts/make-family-checkpoints.py):
 * llama (BF16, untied, linear rope scaling), qwen2 (BF16, tied, padded vocabulary), starcoder2 (F32,
 * sharded, sliding window 16), each with its tokenizer and a llama.cpp Q8_0 GGUF copy.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { WeightFormat } from '../../../src/engine/quant.ts';
import type { LlamaFamily } from '../../../src/engine/model/llama-family.ts';
import { decodeWeight } from '../../../src/engine/quant.ts';
import type { PackedBatch } from '../../../src/engine/reference/model.ts';
import { MemoryModelFiles } from '../../../src/io/files.ts';
import { loadModel, type CheckpointFormat, type LoadedModel } from '../../../src/io/load.ts';
import { rowsCols } from '../../../src/io/tensors.ts';
import type { Objective } from '../../../src/shared/batch.ts';
import { ROOT, readBytes } from './fixtures.ts';

export const FAMILIES: readonly LlamaFamily[] = ['llama', 'qwen2', 'starcoder2'];

export const familyDir = (family: LlamaFamily): string => join(ROOT, 'tests/fixtures/families', family);

export const JAVA =
  'public String readFile(String path) throws IOException {\n' +
  '    if (path.contains("..")) throw new IllegalArgumentException(path);\n' +
  '    return Files.readString(Path.of(BASE, path));\n}\n';

/**
 * A family's files in memory: `which` keeps the safetensors (single or sharded), the GGUF or both;
 * `configJson` false leaves config.json out (the GGUF's metadata is then the config).
 */
export function familyFiles(
  family: LlamaFamily,
  which: 'safetensors' | 'gguf' | 'all' = 'all',
  configJson = true,
): MemoryModelFiles {
  const files = new Map<string, Uint8Array>();
  for (const name of readdirSync(familyDir(family))) {
    const gguf = name.endsWith('.gguf');
    const weights = gguf || name.includes('safetensors');
    if (name === 'config.json' && !configJson) continue;
    if (weights && which !== 'all' && (which === 'gguf') !== gguf) continue;
    files.set(name, readBytes(join(familyDir(family), name)));
  }
  return new MemoryModelFiles(files, family);
}

/** Loads a family's checkpoint into float64 values (as the sink receives them, decoded). */
export async function loadParams(
  family: LlamaFamily,
  prefer: CheckpointFormat,
  weightFormat: WeightFormat = 'f32',
  objective?: Objective,
): Promise<{ model: LoadedModel; params: Map<string, Float64Array> }> {
  const params = new Map<string, Float64Array>();
  const model = await loadModel(familyFiles(family), {
    weightFormat,
    prefer,
    objective,
    sink: async (name, shape, format, bytes) => {
      params.set(name, Float64Array.from(decodeWeight(format, ...rowsCols(shape), bytes)));
    },
  });
  return { model, params };
}

/** One pack holding `ids` as one function (labelled vulnerable for the cls head). */
export function batchOf(ids: readonly number[]): PackedBatch {
  return {
    inputIds: [[...ids]],
    segmentIds: [ids.map(() => 0)],
    positionIds: [ids.map((_, i) => i)],
    functions: [{ pack: 0, last: ids.length - 1, label: 1, weight: 1 }],
  };
}
