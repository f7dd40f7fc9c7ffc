/**
 * The Llama family of configurations as Hugging Face writes them in config.json: `llama` (CodeLlama,
 * WizardCoder-Python, DeepSeek-Coder), `qwen2` (Qwen2.5-Coder) and `starcoder2`. They share one
 * block: pre-norm, rotary positions, grouped-query attention from separate q/k/v projections and a
 * gated (SwiGLU) or plain GELU MLP; what differs is listed per field below.
 */
import { ConfigError } from './config.ts';

export type LlamaFamily = 'llama' | 'qwen2' | 'starcoder2';
export const LLAMA_FAMILIES: readonly LlamaFamily[] = ['llama', 'qwen2', 'starcoder2'];

export interface LlamaFamilyConfig {
  model_type: LlamaFamily;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  /** Grouped-query attention: K/V heads, dividing num_attention_heads (absent: = num_attention_heads). */
  num_key_value_heads?: number | null;
  /** Per-head width; absent: hidden_size / num_attention_heads. */
  head_dim?: number | null;
  /** 'silu' (SwiGLU MLP: llama, qwen2) or 'gelu_pytorch_tanh' / 'gelu' (starcoder2's c_fc/c_proj MLP). */
  hidden_act: string;
  max_position_embeddings: number;
  /** RMSNorm epsilon (llama, qwen2). */
  rms_norm_eps?: number;
  /** LayerNorm epsilon (starcoder2). */
  norm_epsilon?: number;
  rope_theta?: number;
  /** Only linear position interpolation ({ type | rope_type: 'linear', factor }) or none. */
  rope_scaling?: { type?: string; rope_type?: string; factor?: number } | null;
  /** llama: biases on q/k/v/o. */
  attention_bias?: boolean;
  /** llama: biases on gate/up/down. */
  mlp_bias?: boolean;
  /** starcoder2: biases on every linear and its LayerNorms. */
  use_bias?: boolean;
  /** starcoder2 (and qwen2 when use_sliding_window): keys per query, itself included. */
  sliding_window?: number | null;
  /**
   * qwen2: the window on every layer. Hugging Face's Qwen2 windows only the layers from
   * max_window_layers on; src/io/config.ts turns that into all or none (or refuses a mix) first.
   */
  use_sliding_window?: boolean;
  tie_word_embeddings?: boolean;
  pad_token_id?: number | null;
  bos_token_id?: number | null;
  eos_token_id?: number | number[] | null;
}

/** Everything the engine wires, derived from a Llama-family config. */
export interface ResolvedLlamaFamily {
  family: LlamaFamily;
  vocab: number;
  width: number;
  inner: number;
  layers: number;
  nHead: number;
  kvHeads: number;
  headDim: number;
  maxPositions: number;
  norm: 'rmsnorm' | 'layernorm';
  eps: number;
  mlp: 'swiglu' | 'gelu' | 'gelu_pytorch_tanh';
  qkvBias: boolean;
  outputBias: boolean;
  mlpBias: boolean;
  ropeTheta: number;
  ropeScaling: number;
  slidingWindow: number | null;
  tiedEmbeddings: boolean;
}

const isPositiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** Validates a Llama-family config field by field; one ConfigError lists every problem. */
export function resolveLlamaFamily(config: LlamaFamilyConfig): ResolvedLlamaFamily {
  const errors: string[] = [];
  const family = config.model_type;
  if (!LLAMA_FAMILIES.includes(family)) {
    throw new ConfigError(
      `model_type ${JSON.stringify(family)} is not a Llama-family model (known: ${LLAMA_FAMILIES.join(', ')}).`,
    );
  }
  const int = (name: keyof LlamaFamilyConfig): number => {
    const v = config[name];
    if (!isPositiveInt(v)) errors.push(`${name} must be a positive integer (got ${JSON.stringify(v)})`);
    return v as number;
  };
  const vocab = int('vocab_size');
  const width = int('hidden_size');
  const inner = int('intermediate_size');
  const layers = int('num_hidden_layers');
  const nHead = int('num_attention_heads');
  const maxPositions = int('max_position_embeddings');
  const kvHeads = config.num_key_value_heads ?? nHead;
  if (!isPositiveInt(kvHeads) || nHead % kvHeads !== 0) {
    errors.push(
      `num_key_value_heads (${kvHeads}) must be a positive divisor of num_attention_heads (${nHead})`,
    );
  }
  const headDim = config.head_dim ?? width / nHead;
  if (!isPositiveInt(headDim) || headDim % 2 !== 0) {
    errors.push(
      `head_dim (${headDim}) must be an even positive integer (hidden_size / num_attention_heads by default)`,
    );
  }
  const starcoder2 = family === 'starcoder2';
  const eps = (starcoder2 ? config.norm_epsilon : config.rms_norm_eps) ?? (starcoder2 ? 1e-5 : 1e-6);
  if (!(typeof eps === 'number' && eps > 0 && Number.isFinite(eps))) {
    errors.push(`${starcoder2 ? 'norm_epsilon' : 'rms_norm_eps'} must be a positive number (got ${eps})`);
  }
  const act = config.hidden_act;
  const mlpKinds = starcoder2 ? ['gelu', 'gelu_pytorch_tanh'] : ['silu'];
  if (!mlpKinds.includes(act)) {
    errors.push(`hidden_act must be ${mlpKinds.join(' or ')} for ${family} (got ${JSON.stringify(act)})`);
  }
  const ropeTheta = config.rope_theta ?? 10000;
  if (!(ropeTheta > 0 && Number.isFinite(ropeTheta)))
    errors.push(`rope_theta must be positive (got ${ropeTheta})`);
  let ropeScaling = 1;
  if (config.rope_scaling) {
    const type = config.rope_scaling.rope_type ?? config.rope_scaling.type;
    const factor = config.rope_scaling.factor;
    if (type !== 'linear') {
      errors.push(`rope_scaling type ${JSON.stringify(type)} is not supported (only "linear")`);
    } else if (!(typeof factor === 'number' && factor >= 1)) {
      errors.push(`rope_scaling.factor must be a number ≥ 1 (got ${JSON.stringify(factor)})`);
    } else ropeScaling = factor;
  }
  const windowOn = starcoder2 || config.use_sliding_window === true;
  const window = windowOn ? (config.sliding_window ?? null) : null;
  if (window !== null && !isPositiveInt(window)) {
    errors.push(`sliding_window must be a positive integer or null (got ${JSON.stringify(window)})`);
  }
  for (const name of ['pad_token_id', 'bos_token_id'] as const) {
    const v = config[name];
    if (v !== undefined && v !== null && !(Number.isInteger(v) && v >= 0 && v < vocab)) {
      errors.push(`${name} must be a token id in [0, ${vocab}) or null (got ${JSON.stringify(v)})`);
    }
  }
  if (errors.length > 0) throw new ConfigError(`Invalid ${family} config: ${errors.join('; ')}.`);
  const biases = starcoder2 ? config.use_bias !== false : false;
  return {
    family,
    vocab,
    width,
    inner,
    layers,
    nHead,
    kvHeads,
    headDim,
    maxPositions,
    norm: starcoder2 ? 'layernorm' : 'rmsnorm',
    eps,
    mlp: starcoder2 ? (act as 'gelu' | 'gelu_pytorch_tanh') : 'swiglu',
    // Qwen2: biases on q/k/v only; llama: attention_bias on all four; starcoder2: use_bias everywhere.
    qkvBias: family === 'qwen2' || biases || config.attention_bias === true,
    outputBias: biases || (family === 'llama' && config.attention_bias === true),
    mlpBias: biases || (family === 'llama' && config.mlp_bias === true),
    ropeTheta,
    ropeScaling,
    slidingWindow: window,
    // Hugging Face defaults: LlamaConfig and Qwen2Config untied, Starcoder2Config the PretrainedConfig default (tied).
    tiedEmbeddings: config.tie_word_embeddings ?? starcoder2,
  };
}
