/**
 * LoRA targets across model families. A run config names targets before the model is known (the
 * paper's default is GPT-BigCode's four block linears), so a target of another family is read by its
 * role: GPT-BigCode's fused attn.c_attn is the Llama family's q/k/v projections, attn.c_proj its
 * o_proj, mlp.c_fc the gate and up projections (StarCoder2: its own c_fc), mlp.c_proj the down
 * projection (StarCoder2: c_proj); and the other way round. `wte` is every family's token embedding.
 * PEFT's `target_modules` and the adapter's tensor names are the family's own.
 */
import { describeDecoder, type LoraTarget, type ModelConfig } from '../engine/index.ts';
import { RunError } from './types.ts';

export { ALL_LORA_TARGETS } from './config.ts';

/** The role of a block linear, shared by every family. */
type Role = 'qkv' | 'out' | 'up' | 'down';
const ROLE: Record<Exclude<LoraTarget, 'wte'>, Role> = {
  'attn.c_attn': 'qkv',
  'self_attn.q_proj': 'qkv',
  'self_attn.k_proj': 'qkv',
  'self_attn.v_proj': 'qkv',
  'attn.c_proj': 'out',
  'self_attn.o_proj': 'out',
  'mlp.c_fc': 'up',
  'mlp.gate_proj': 'up',
  'mlp.up_proj': 'up',
  'mlp.c_proj': 'down',
  'mlp.down_proj': 'down',
};

/**
 * The model's own targets for a run config's `lora.targets`, in the model's order: a target the
 * family has is taken as it is; another family's stands for every linear of the same role (all of
 * them only when the family lacks the named one itself).
 */
export function familyLoraTargets(requested: readonly LoraTarget[], config: ModelConfig): LoraTarget[] {
  const own = describeDecoder(config).loraTargets;
  const chosen = new Set<LoraTarget>();
  for (const target of requested) {
    if (own.includes(target)) chosen.add(target);
    else if (target !== 'wte' && ROLE[target]) {
      for (const t of own) if (t !== 'wte' && ROLE[t] === ROLE[target]) chosen.add(t);
    } else {
      throw new RunError(
        `LoRA target "${target}" is not a module of this model.`,
        `This model's targets: ${own.join(', ')}.`,
      );
    }
  }
  return own.filter((t) => chosen.has(t));
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
