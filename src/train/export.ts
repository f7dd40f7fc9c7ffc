/**
 * PEFT-format adapter export: `adapter_config.json` + `adapter_model.safetensors` with the key names
 * Python's peft writes for GPTBigCodeForSequenceClassification (`base_model.model.transformer.h.0.
 * attn.c_attn.lora_A.weight`) or, for the Llama family, LlamaForSequenceClassification /
 * Qwen2… / Starcoder2… (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`; the head
 * `base_model.model.score.weight` in both), so `PeftModel.from_pretrained` loads it.
 */
import { WEIGHT_FORMATS } from '../engine/index.ts';
import { toF32 } from '../io/convert.ts';
import { readSafetensorsHeader, writeSafetensors, type SafetensorsWriteEntry } from '../io/safetensors.ts';
import { MemoryByteSource } from '../io/source.ts';
import { readTensorBytes } from '../io/tensors.ts';
import type { RunConfig } from './config.ts';
import { peftTargetModules } from './targets.ts';
import { RunError } from './types.ts';

export interface ExportedFile {
  name: string;
  bytes: Uint8Array;
}

const PEFT_PREFIX = 'base_model.model.';

/**
 * `transformer.h.0.attn.c_attn.lora_A.weight` → `base_model.model.transformer.h.0.attn.c_attn.lora_A.weight`;
 * `model.layers.0.self_attn.q_proj.lora_A.weight` → `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`.
 */
export const peftKey = (name: string): string => PEFT_PREFIX + name;

export function exportPeftAdapter(
  trainables: ReadonlyMap<string, Float32Array>,
  shapes: ReadonlyMap<string, number[]>,
  config: RunConfig,
  baseModel: string,
): ExportedFile[] {
  const entries: SafetensorsWriteEntry[] = [...trainables].map(([name, values]) => ({
    name: peftKey(name),
    dtype: 'F32',
    shape: shapes.get(name) ?? [values.length],
    data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  }));
  const adapterConfig = {
    peft_type: 'LORA',
    // The next-token objective trains the language-model head's inputs only: a causal-LM adapter.
    task_type: config.objective === 'ntp' ? 'CAUSAL_LM' : 'SEQ_CLS',
    base_model_name_or_path: baseModel,
    r: config.lora.r,
    lora_alpha: config.lora.alpha,
    lora_dropout: config.lora.dropout,
    // PEFT's module names: GPT-BigCode's as the config names them (attn.c_attn, …, wte), the Llama
    // family's leaf names of the adapted modules (q_proj, …, down_proj, embed_tokens).
    target_modules: peftTargetModules(trainables.keys()) ?? config.lora.targets,
    modules_to_save: config.objective === 'ntp' ? null : ['score'],
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
  };
  return [
    {
      name: 'adapter_config.json',
      bytes: new TextEncoder().encode(JSON.stringify(adapterConfig, null, 2) + '\n'),
    },
    { name: 'adapter_model.safetensors', bytes: writeSafetensors(entries, { format: 'pt' }) },
  ];
}

/**
 * `vulnlab_detector.json`, beside the PEFT files (peft ignores it): what scoring needs beyond the
 * weights to reproduce the run — the threshold chosen on validation and how code was prepared.
 */
export interface DetectorSettings {
  threshold: number;
  packLength: number;
  batching: RunConfig['batching']['mode'];
  truncation: RunConfig['truncation'];
  normalize: RunConfig['normalize'];
  baseModel: string;
  /**
   * The frozen base's format in the run (f32, f16, q8_0, q4_0): eval and scan load the base so, which
   * scores as the run did and needs the memory it did. Absent in files from before it was recorded
   * (then f32).
   */
  weightFormat?: RunConfig['weightFormat'];
  validation?: { rocAuc: number | null; n: number };
}

export const DETECTOR_SETTINGS_FILE = 'vulnlab_detector.json';

export function detectorSettingsFile(settings: DetectorSettings): ExportedFile {
  return {
    name: DETECTOR_SETTINGS_FILE,
    bytes: new TextEncoder().encode(JSON.stringify(settings, null, 2) + '\n'),
  };
}

export function readDetectorSettings(json: string): DetectorSettings {
  let raw: Partial<DetectorSettings>;
  try {
    raw = JSON.parse(json) as Partial<DetectorSettings>;
  } catch (error) {
    throw new RunError(
      `${DETECTOR_SETTINGS_FILE} is not JSON: ${(error as Error).message}`,
      'Export the adapter again from its run, or delete the file to score without a threshold.',
    );
  }
  if (!(typeof raw.threshold === 'number' && raw.threshold >= 0 && raw.threshold <= 1)) {
    throw new RunError(
      `${DETECTOR_SETTINGS_FILE} has no threshold in [0, 1].`,
      'Export the adapter again from its run, or delete the file to score without a threshold.',
    );
  }
  if (raw.weightFormat !== undefined && !WEIGHT_FORMATS.includes(raw.weightFormat)) {
    throw new RunError(
      `${DETECTOR_SETTINGS_FILE} names weight format "${String(raw.weightFormat)}"; known: ${WEIGHT_FORMATS.join(', ')}.`,
      'Export the adapter again from its run, or delete the field to score on f32 weights.',
    );
  }
  return raw as DetectorSettings;
}

export interface ImportedAdapter {
  config: {
    r: number;
    alpha: number;
    dropout: number;
    targets: string[];
    baseModel: string;
    /** PEFT's task type: SEQ_CLS (score head) or CAUSAL_LM (next-token objective). */
    taskType: string;
  };
  /** Engine names (the PEFT prefix removed) → values. */
  tensors: Map<string, Float32Array>;
}

/**
 * Reads a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors), as exported here or
 * by Python's peft for GPT-BigCode, for evaluation and scanning.
 */
export async function importPeftAdapter(
  configJson: string,
  safetensors: Uint8Array,
): Promise<ImportedAdapter> {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(configJson) as Record<string, unknown>;
  } catch (error) {
    throw new RunError(
      `adapter_config.json is not JSON: ${(error as Error).message}`,
      'Pick a PEFT adapter folder.',
    );
  }
  if (raw.peft_type !== 'LORA') {
    throw new RunError(
      `The adapter's peft_type is ${JSON.stringify(raw.peft_type)}, not "LORA".`,
      'Only LoRA adapters can be imported.',
    );
  }
  const header = await readSafetensorsHeader(new MemoryByteSource(safetensors, 'adapter_model.safetensors'));
  const tensors = new Map<string, Float32Array>();
  for (const entry of header.tensors) {
    if (!entry.name.startsWith(PEFT_PREFIX)) {
      throw new RunError(
        `Unexpected tensor ${entry.name} in the adapter.`,
        `PEFT adapter keys start with "${PEFT_PREFIX}".`,
      );
    }
    const [rows, cols] = entry.shape.length === 2 ? entry.shape : [1, entry.shape[0] ?? 1];
    const bytes = await readTensorBytes(entry);
    tensors.set(entry.name.slice(PEFT_PREFIX.length), toF32(entry.dtype, bytes, rows, cols));
  }
  return {
    config: {
      r: Number(raw.r),
      alpha: Number(raw.lora_alpha),
      dropout: Number(raw.lora_dropout ?? 0),
      targets: (raw.target_modules as string[]) ?? [],
      baseModel: String(raw.base_model_name_or_path ?? ''),
      taskType: String(raw.task_type ?? 'SEQ_CLS'),
    },
    tensors,
  };
}
