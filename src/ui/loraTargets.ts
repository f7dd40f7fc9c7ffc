/**
 * LoRA targets in the lab: which ones the chosen model offers (its family's, from its config), and
 * how a run config naming another family's targets is carried over to it — never silently: the
 * store says what it changed. The rule is the trainer's (mapLoraTargets in src/train/config.ts: a
 * target the model has stays; another family's stands for every block linear of the model with the
 * same role), so the form shows what will train.
 */
import { FAMILY_LABELS, findPreset, loraTargetsOf, type Family, type ModelConfig } from '../io/presets.ts';
import {
  LORA_TARGETS,
  mapLoraTargets,
  type LoraTarget,
  type RunConfig,
  type TargetMapping,
} from '../train/config.ts';

/** The targets the model offers; GPT-BigCode's when there is no model (or its config is unusable). */
export function targetsOffered(config: ModelConfig | undefined): readonly LoraTarget[] {
  if (!config) return LORA_TARGETS;
  try {
    return loraTargetsOf(config);
  } catch {
    return LORA_TARGETS;
  }
}

/** The family whose name a message uses for a config ('GPT-BigCode', 'Qwen2', …). */
export function familyLabel(config: ModelConfig | undefined): string {
  const type = (config as { model_type?: string } | undefined)?.model_type;
  return type && type in FAMILY_LABELS ? FAMILY_LABELS[type as Family] : FAMILY_LABELS.gpt_bigcode;
}

/** "attn.c_attn → self_attn.q_proj, self_attn.k_proj, self_attn.v_proj; …" */
export function describeChanges(changes: TargetMapping['changes']): string {
  return changes.map((c) => `${c.from} → ${c.to.join(', ') || 'nothing'}`).join('; ');
}

/**
 * A run config's targets carried to a model, with the message to show when any had to change (the
 * config itself and no message when they are all the model's own).
 */
export function targetsForModel(
  config: RunConfig,
  model: ModelConfig | undefined,
  modelName: string,
): { config: RunConfig; message?: string } {
  if (!model) return { config };
  const { targets, changes } = mapLoraTargets(config.lora.targets, targetsOffered(model));
  if (changes.length === 0) return { config };
  return {
    config: { ...config, lora: { ...config.lora, targets } },
    message: `LoRA targets ${changes.map((c) => c.from).join(', ')} are not modules of ${modelName} (${familyLabel(
      model,
    )}): set to the same parts of its blocks (${describeChanges(changes)}).`,
  };
}

/** The config of the model the Train settings are for: the loaded one, else the draft's preset. */
export function chosenModelConfig(state: {
  model: { info?: { config: ModelConfig } };
  draft: { model: string };
}): ModelConfig | undefined {
  return state.model.info?.config ?? findPreset(state.draft.model)?.config;
}
