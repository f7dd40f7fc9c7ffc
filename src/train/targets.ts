/**
 * LoRA targets of a run on its model: the run config's targets in the model family's own names
 * (config.ts mapLoraTargets), and PEFT's `target_modules` of an adapter. The adapter's tensor names
 * are the family's own.
 */
import { describeDecoder, type LoraTarget, type ModelConfig } from '../engine/index.ts';
import { mapLoraTargets } from './config.ts';
import { RunError } from './types.ts';

/** The model's own targets for a run config's `lora.targets`, in the model's order. */
export function familyLoraTargets(requested: readonly LoraTarget[], config: ModelConfig): LoraTarget[] {
  const own = describeDecoder(config).loraTargets;
  const { targets, changes } = mapLoraTargets(requested, own);
  const missing = changes.find((c) => c.to.length === 0);
  if (missing) {
    throw new RunError(
      `LoRA target "${missing.from}" is not a module of this model.`,
      `This model's targets: ${own.join(', ')}.`,
    );
  }
  return targets;
}

/**
 * PEFT's `target_modules` for the LoRA tensors of a Llama-family adapter: the modules' leaf names
 * (q_proj, …, embed_tokens), as PEFT lists them; undefined for GPT-BigCode names (the run config's
 * targets are PEFT's there: attn.c_attn, …, wte).
 */
export function peftTargetModules(tensorNames: Iterable<string>): string[] | undefined {
  const leaves: string[] = [];
  for (const name of tensorNames) {
    const m = /^model\.(?:layers\.\d+\.[a-z_]+\.)?([a-z_]+)\.(?:lora_[AB]\.weight|lora_embedding_[AB])$/.exec(
      name,
    );
    if (!m) {
      if (name.startsWith('transformer.') && /lora_/.test(name)) return undefined;
      continue;
    }
    if (!leaves.includes(m[1])) leaves.push(m[1]);
  }
  return leaves.length > 0 ? leaves : undefined;
}
