/**
 * LoRA targets in the lab: which ones the chosen model offers (its family's, from its config), and
 * how a run config naming another family's targets is carried over to it — never silently: the
 * store says what it changed. The rule is the trainer's (src/train/targets.ts, familyLoraTargets): a
 * target the model has stays; another family's stands for every block linear of the model with the
 * same role (GPT-BigCode's fused attn.c_attn is q/k/v, attn.c_proj is o_proj, mlp.c_fc is gate and
 * up, mlp.c_proj is down; StarCoder2 keeps its own c_fc/c_proj), so the form shows what will train.
 */
import { FAMILY_LABELS, findPreset, loraTargetsOf, type Family, type ModelConfig } from '../io/presets.ts';
import { LORA_TARGETS, type LoraTarget, type RunConfig } from '../train/config.ts';

type Role = 'qkv' | 'attention output' | 'MLP input' | 'MLP output' | 'token embedding';

/** What each target is in a block, across families (every LoraTarget is listed: the type checks it). */
const ROLE: Record<LoraTarget, Role> = {
  'attn.c_attn': 'qkv',
  'self_attn.q_proj': 'qkv',
  'self_attn.k_proj': 'qkv',
  'self_attn.v_proj': 'qkv',
  'attn.c_proj': 'attention output',
  'self_attn.o_proj': 'attention output',
  'mlp.c_fc': 'MLP input',
  'mlp.gate_proj': 'MLP input',
  'mlp.up_proj': 'MLP input',
  'mlp.c_proj': 'MLP output',
  'mlp.down_proj': 'MLP output',
  wte: 'token embedding',
};

/** The targets the model offers; GPT-BigCode's when there is no model (or its config is unusable). */
export function targetsOffered(config: ModelConfig | undefined): readonly LoraTarget[] {
  if (!config) return LORA_TARGETS;
  try {
    return loraTargetsOf(config);
  } catch {
    return LORA_TARGETS;
  }
}

export interface TargetMapping {
  /** The targets in the model's own names and order. */
  targets: LoraTarget[];
  /** Each target the model does not have, and what it stands for on this model. */
  changes: { from: LoraTarget; to: LoraTarget[] }[];
}

/** `targets` in the names of a model offering `offered` (see the module comment). */
export function mapTargets(targets: readonly LoraTarget[], offered: readonly LoraTarget[]): TargetMapping {
  const chosen = new Set<LoraTarget>();
  const changes: TargetMapping['changes'] = [];
  for (const t of targets) {
    if (offered.includes(t)) chosen.add(t);
    else {
      const to = offered.filter((o) => ROLE[o] === ROLE[t]);
      to.forEach((o) => chosen.add(o));
      changes.push({ from: t, to });
    }
  }
  return { targets: offered.filter((o) => chosen.has(o)), changes };
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
  const { targets, changes } = mapTargets(config.lora.targets, targetsOffered(model));
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
