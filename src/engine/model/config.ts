/**
 * GPT-BigCode (StarCoder / WizardCoder) configuration as in Hugging Face's `GPTBigCodeConfig`, its
 * parameter names and shapes, and the LoRA configuration the lab trains with.
 */
import { VulnLabError } from '../errors.ts';

export type Activation = 'gelu' | 'gelu_pytorch_tanh';

export interface GptBigCodeConfig {
  vocab_size: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  /** Width of the MLP; null (or absent) means 4·n_embd as in Hugging Face. */
  n_inner?: number | null;
  n_positions: number;
  /** One shared K/V head (StarCoder) instead of one per query head. */
  multi_query: boolean;
  activation_function: Activation;
  layer_norm_epsilon: number;
  pad_token_id?: number | null;
  bos_token_id?: number | null;
  eos_token_id?: number | null;
}

/** A config with every derived figure filled in. */
export interface ResolvedConfig extends GptBigCodeConfig {
  n_inner: number;
  headDim: number;
  /** K and V heads: 1 with multi-query, n_head otherwise. */
  kvHeads: number;
  /** Rows of c_attn: n_embd + 2·headDim (multi-query) or 3·n_embd. */
  qkvDim: number;
}

/** Bad model, LoRA or batch configuration. */
export class ConfigError extends VulnLabError {
  constructor(message: string, hint = 'Check the model configuration (config.json) and the LoRA settings.') {
    super('bad-input', message, hint);
  }
}

const ACTIVATIONS: readonly string[] = ['gelu', 'gelu_pytorch_tanh'];

function positiveInt(name: string, value: unknown, errors: string[]): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    errors.push(`${name} must be a positive integer (got ${JSON.stringify(value)})`);
  }
}

function optionalToken(name: string, value: unknown, vocab: number, errors: string[]): void {
  if (value === undefined || value === null) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= vocab) {
    errors.push(`${name} must be a token id in [0, ${vocab}) or null (got ${JSON.stringify(value)})`);
  }
}

/** Validates a config and fills in n_inner, head size and the c_attn width; throws one readable error. */
export function resolveConfig(config: GptBigCodeConfig): ResolvedConfig {
  const errors: string[] = [];
  positiveInt('vocab_size', config.vocab_size, errors);
  positiveInt('n_embd', config.n_embd, errors);
  positiveInt('n_layer', config.n_layer, errors);
  positiveInt('n_head', config.n_head, errors);
  positiveInt('n_positions', config.n_positions, errors);
  if (config.n_inner !== undefined && config.n_inner !== null) positiveInt('n_inner', config.n_inner, errors);
  if (typeof config.multi_query !== 'boolean') {
    errors.push(`multi_query must be true or false (got ${JSON.stringify(config.multi_query)})`);
  }
  if (!ACTIVATIONS.includes(config.activation_function)) {
    errors.push(
      `activation_function must be one of ${ACTIVATIONS.join(', ')} (got ${JSON.stringify(config.activation_function)})`,
    );
  }
  const eps = config.layer_norm_epsilon;
  if (typeof eps !== 'number' || !(eps > 0) || !Number.isFinite(eps)) {
    errors.push(`layer_norm_epsilon must be a positive number (got ${JSON.stringify(eps)})`);
  }
  if (errors.length === 0 && config.n_embd % config.n_head !== 0) {
    errors.push(`n_embd (${config.n_embd}) must be divisible by n_head (${config.n_head})`);
  }
  if (errors.length === 0) {
    optionalToken('pad_token_id', config.pad_token_id, config.vocab_size, errors);
    optionalToken('bos_token_id', config.bos_token_id, config.vocab_size, errors);
    optionalToken('eos_token_id', config.eos_token_id, config.vocab_size, errors);
  }
  if (errors.length > 0) throw new ConfigError(`Invalid GPT-BigCode config: ${errors.join('; ')}.`);
  const headDim = config.n_embd / config.n_head;
  const n_inner = config.n_inner ?? 4 * config.n_embd;
  return {
    ...config,
    n_inner,
    headDim,
    kvHeads: config.multi_query ? 1 : config.n_head,
    qkvDim: config.multi_query ? config.n_embd + 2 * headDim : 3 * config.n_embd,
  };
}

/** The linear modules LoRA can adapt, named by their suffix inside a block. */
export type LinearTarget = 'attn.c_attn' | 'attn.c_proj' | 'mlp.c_fc' | 'mlp.c_proj';
export const LINEAR_TARGETS: readonly LinearTarget[] = [
  'attn.c_attn',
  'attn.c_proj',
  'mlp.c_fc',
  'mlp.c_proj',
];
/** The Llama family's block linears (decoder.ts): attention q/k/v/o, the SwiGLU or StarCoder2 MLP. */
export type LlamaLinearTarget =
  | 'self_attn.q_proj'
  | 'self_attn.k_proj'
  | 'self_attn.v_proj'
  | 'self_attn.o_proj'
  | 'mlp.gate_proj'
  | 'mlp.up_proj'
  | 'mlp.down_proj'
  | 'mlp.c_fc'
  | 'mlp.c_proj';
/**
 * What LoRA can adapt: the block linears, and `wte`, the token embedding (PEFT's LoRA `Embedding`:
 * A [r, vocab] starting at zero, B [n_embd, r]). The embedding's adapter gives every token its own
 * trainable r-vector, which a model as small as the demo's needs to pick up token-level evidence.
 * LORA_TARGETS are GPT-BigCode's; each family lists its own (decoder.ts `loraTargets`).
 */
export type LoraTarget = LinearTarget | LlamaLinearTarget | 'wte';
export const LORA_TARGETS: readonly LoraTarget[] = [...LINEAR_TARGETS, 'wte'];
/** PEFT's names of the token embedding's adapter (no `.weight` suffix, as PEFT saves them). */
export const EMBEDDING_LORA_A = 'transformer.wte.lora_embedding_A';
export const EMBEDDING_LORA_B = 'transformer.wte.lora_embedding_B';

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  targets: LoraTarget[];
}

/** Validates a LoRA config (targets among `known`, the model family's) and returns its scaling alpha/r. */
export function loraScaling(lora: LoraConfig, known: readonly LoraTarget[] = LORA_TARGETS): number {
  const errors: string[] = [];
  if (!Number.isInteger(lora.r) || lora.r <= 0) errors.push(`r must be a positive integer (got ${lora.r})`);
  if (!(lora.alpha > 0) || !Number.isFinite(lora.alpha))
    errors.push(`alpha must be positive (got ${lora.alpha})`);
  if (!(lora.dropout >= 0 && lora.dropout < 1))
    errors.push(`dropout must be in [0, 1) (got ${lora.dropout})`);
  for (const t of lora.targets) {
    if (!known.includes(t)) errors.push(`unknown target "${t}" (known: ${known.join(', ')})`);
  }
  if (new Set(lora.targets).size !== lora.targets.length) errors.push('targets are listed twice');
  if (errors.length > 0) {
    throw new ConfigError(
      `Invalid LoRA config: ${errors.join('; ')}.`,
      'Typical values: r 8, alpha 16, dropout 0.05.',
    );
  }
  return lora.alpha / lora.r;
}

export interface ParamSpec {
  name: string;
  shape: number[];
  kind:
    | 'embedding'
    | 'norm'
    | 'linear-weight'
    | 'linear-bias'
    | 'head'
    | 'lora-A'
    | 'lora-B'
    | 'lora-embedding-A'
    | 'lora-embedding-B';
  /** Block index for per-layer parameters. */
  layer?: number;
}

/** [out, in] of a block's linear module. */
export function linearShape(c: ResolvedConfig, target: LinearTarget): [number, number] {
  switch (target) {
    case 'attn.c_attn':
      return [c.qkvDim, c.n_embd];
    case 'attn.c_proj':
      return [c.n_embd, c.n_embd];
    case 'mlp.c_fc':
      return [c.n_inner, c.n_embd];
    case 'mlp.c_proj':
      return [c.n_embd, c.n_inner];
  }
}

export const blockPrefix = (layer: number): string => `transformer.h.${layer}`;

export type Trainable = 'lora' | 'all';

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Checks a name→array map against the expected specs: every name present with the right length. */
export function checkParams(
  specs: readonly ParamSpec[],
  params: ReadonlyMap<string, ArrayLike<number>>,
): void {
  const errors: string[] = [];
  for (const s of specs) {
    const v = params.get(s.name);
    if (!v) errors.push(`missing ${s.name} [${s.shape.join(', ')}]`);
    else if (v.length !== numel(s.shape)) {
      errors.push(`${s.name} has ${v.length} values, expected [${s.shape.join(', ')}] = ${numel(s.shape)}`);
    }
  }
  if (errors.length > 0) {
    const shown = errors.slice(0, 8).join('; ');
    throw new ConfigError(
      `Parameters do not match the config: ${shown}${errors.length > 8 ? `; and ${errors.length - 8} more` : ''}.`,
      'Check that the checkpoint belongs to this config (n_embd, n_layer, multi_query, LoRA r).',
    );
  }
}
