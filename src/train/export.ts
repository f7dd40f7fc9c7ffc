/**
 * PEFT-format adapter export: `adapter_config.json` + `adapter_model.safetensors` with the key names
 * Python's peft writes for GPTBigCodeForSequenceClassification, so `PeftModel.from_pretrained` loads it.
 */
import { writeSafetensors, type SafetensorsWriteEntry } from '../io/safetensors.ts';
import type { RunConfig } from './config.ts';

export interface ExportedFile {
  name: string;
  bytes: Uint8Array;
}

const PEFT_PREFIX = 'base_model.model.';

/** `transformer.h.0.attn.c_attn.lora_A.weight` → `base_model.model.transformer.h.0.attn.c_attn.lora_A.weight`. */
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
    task_type: 'SEQ_CLS',
    base_model_name_or_path: baseModel,
    r: config.lora.r,
    lora_alpha: config.lora.alpha,
    lora_dropout: config.lora.dropout,
    target_modules: config.lora.targets,
    modules_to_save: ['score'],
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
