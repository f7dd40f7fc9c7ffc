/**
 * config.json → a validated model config for the engine: GPT-BigCode (StarCoder, WizardCoder,
 * SantaCoder; model_type "gpt_bigcode") resolved with its derived sizes, or a Llama family's
 * (model_type "llama", "qwen2", "starcoder2") as Hugging Face writes it. The config types and their
 * structural validation live in the engine (src/engine/model/config.ts, llama-family.ts); this module
 * parses the JSON, checks the fields a Hugging Face config can carry that the lab does not implement,
 * and names every unsupported value, field by field.
 */
import {
  ConfigError,
  resolveConfig,
  type GptBigCodeConfig,
  type ResolvedConfig,
} from '../engine/model/config.ts';
import { describeDecoder, isLlamaFamily, type ModelConfig } from '../engine/model/decoder.ts';
import {
  LLAMA_FAMILIES,
  resolveLlamaFamily,
  type LlamaFamily,
  type LlamaFamilyConfig,
} from '../engine/model/llama-family.ts';
import { ModelFormatError, UnsupportedModelError } from './errors.ts';

export type { GptBigCodeConfig, LlamaFamilyConfig, ModelConfig, ResolvedConfig };
export { isLlamaFamily };

/** The model types config.json may name. */
export const MODEL_TYPES = ['gpt_bigcode', ...LLAMA_FAMILIES] as const;

const CONFIG_HINT =
  'config.json must be a Hugging Face config of a GPT-BigCode (model_type "gpt_bigcode"), Llama ("llama"), Qwen2 ("qwen2") or StarCoder2 ("starcoder2") model.';

/** Parses and validates the text of a config.json. */
export function parseConfigJson(text: string, file = 'config.json'): ModelConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ModelFormatError(
      'bad-config',
      file,
      `is not valid JSON (${cause instanceof Error ? cause.message : String(cause)}).`,
      CONFIG_HINT,
    );
  }
  return parseConfig(raw, file);
}

/** Validates an already parsed config object. */
export function parseConfig(raw: unknown, file = 'config.json'): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelFormatError('bad-config', file, 'must be a JSON object.', CONFIG_HINT);
  }
  const o = raw as Record<string, unknown>;
  if (o.model_type === 'gpt_bigcode') return parseGptBigCode(o, file);
  if (LLAMA_FAMILIES.includes(o.model_type as LlamaFamily)) return parseLlamaFamily(o, file);
  const arch = Array.isArray(o.architectures) ? ` (architectures: ${o.architectures.join(', ')})` : '';
  throw new UnsupportedModelError(
    'unsupported-architecture',
    `${file}: model_type ${JSON.stringify(o.model_type)}${arch} is not supported; the lab trains ${MODEL_TYPES.map((t) => JSON.stringify(t)).join(', ')} models (StarCoder, WizardCoder, CodeLlama, DeepSeek-Coder, Qwen2.5-Coder, StarCoder2).`,
    'Pick a model of one of these families, e.g. WizardLMTeam/WizardCoder-1B-V1.0 or Qwen/Qwen2.5-Coder-0.5B.',
  );
}

/** Settings every family refuses: weights that are not plain floats. */
function commonUnsupported(o: Record<string, unknown>, unsupported: string[]): void {
  if (o.quantization_config !== undefined && o.quantization_config !== null) {
    const method = (o.quantization_config as { quant_method?: unknown }).quant_method;
    unsupported.push(
      `quantization_config (${method === undefined ? 'pre-quantized weights' : JSON.stringify(method)}: the lab loads float weights and quantizes them itself)`,
    );
  }
}

function parseGptBigCode(o: Record<string, unknown>, file: string): ResolvedConfig {
  const unsupported: string[] = [];
  if (
    o.activation_function !== undefined &&
    o.activation_function !== 'gelu' &&
    o.activation_function !== 'gelu_pytorch_tanh'
  ) {
    unsupported.push(
      `activation_function ${JSON.stringify(o.activation_function)} (supported: "gelu", "gelu_pytorch_tanh")`,
    );
  }
  if (o.scale_attn_weights === false) unsupported.push('scale_attn_weights false');
  // attention_softmax_in_fp32 / scale_attention_softmax_in_fp32 only change fp16 numerics in
  // PyTorch; the engine always computes softmax in f32.
  if (o.add_cross_attention === true) unsupported.push('add_cross_attention true');
  if (o.tie_word_embeddings === false) unsupported.push('tie_word_embeddings false (untied lm_head)');
  if (o.rope_scaling !== undefined && o.rope_scaling !== null) unsupported.push('rope_scaling');
  commonUnsupported(o, unsupported);
  if (unsupported.length > 0) {
    throw new UnsupportedModelError(
      'unsupported-config',
      `${file}: unsupported GPT-BigCode settings: ${unsupported.join('; ')}.`,
      'The lab implements StarCoder/WizardCoder as released; pick one of the preset models.',
    );
  }
  const config: GptBigCodeConfig = {
    vocab_size: o.vocab_size as number,
    n_embd: o.n_embd as number,
    n_layer: o.n_layer as number,
    n_head: o.n_head as number,
    n_inner: (o.n_inner ?? null) as number | null,
    n_positions: o.n_positions as number,
    multi_query: (o.multi_query ?? true) as boolean,
    activation_function: (o.activation_function ??
      'gelu_pytorch_tanh') as GptBigCodeConfig['activation_function'],
    layer_norm_epsilon: (o.layer_norm_epsilon ?? 1e-5) as number,
    pad_token_id: (o.pad_token_id ?? null) as number | null,
    bos_token_id: (o.bos_token_id ?? null) as number | null,
    eos_token_id: (o.eos_token_id ?? null) as number | null,
  };
  try {
    return resolveConfig(config);
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new ModelFormatError('bad-config', file, err.message, CONFIG_HINT);
    }
    throw err;
  }
}

/** Hugging Face's Qwen2Config default of max_window_layers. */
const QWEN2_MAX_WINDOW_LAYERS = 28;

/**
 * A Llama-family config: the options the engine does not implement are named one by one (rope
 * scaling other than linear, per-layer sliding windows, activations, MLP and norm variants…), then
 * resolveLlamaFamily validates every figure. The result keeps only the fields the engine reads.
 */
function parseLlamaFamily(o: Record<string, unknown>, file: string): LlamaFamilyConfig {
  const family = o.model_type as LlamaFamily;
  const unsupported: string[] = [];
  const starcoder2 = family === 'starcoder2';
  const act = o.hidden_act ?? (starcoder2 ? 'gelu_pytorch_tanh' : 'silu');
  const acts = starcoder2 ? ['gelu_pytorch_tanh', 'gelu'] : ['silu'];
  if (!acts.includes(act as string)) {
    unsupported.push(
      `hidden_act ${JSON.stringify(act)} (supported for ${family}: ${acts.map((a) => JSON.stringify(a)).join(', ')})`,
    );
  }
  // rope_scaling: none, "default" (none) or linear position interpolation.
  let ropeScaling = o.rope_scaling as LlamaFamilyConfig['rope_scaling'] | undefined;
  if (ropeScaling !== undefined && ropeScaling !== null) {
    if (typeof ropeScaling !== 'object' || Array.isArray(ropeScaling)) {
      unsupported.push(`rope_scaling ${JSON.stringify(ropeScaling)} (expected an object or null)`);
      ropeScaling = null;
    } else {
      const type = ropeScaling.rope_type ?? ropeScaling.type;
      if (type === 'default') ropeScaling = null;
      else if (type !== 'linear') {
        unsupported.push(
          `rope_scaling type ${JSON.stringify(type)} (supported: "linear" position interpolation, or none)`,
        );
      }
    }
  }
  const layers = o.num_hidden_layers;
  let useSlidingWindow = o.use_sliding_window === true;
  if (family === 'qwen2' && useSlidingWindow && o.sliding_window !== null && o.sliding_window !== undefined) {
    // Hugging Face's Qwen2: layers from max_window_layers on use the window, the ones before attend
    // to everything. The engine has one window for every layer: all windowed or none.
    const from = o.max_window_layers ?? QWEN2_MAX_WINDOW_LAYERS;
    if (typeof from === 'number' && typeof layers === 'number' && from >= layers) useSlidingWindow = false;
    else if (from !== 0) {
      unsupported.push(
        `use_sliding_window true with max_window_layers ${JSON.stringify(from)} < num_hidden_layers ${JSON.stringify(layers)} (a window on some layers only; supported: max_window_layers 0, every layer windowed, or ≥ num_hidden_layers)`,
      );
    }
  }
  if (o.layer_types !== undefined && o.layer_types !== null) {
    const types = Array.isArray(o.layer_types) ? new Set(o.layer_types) : new Set(['?']);
    if (types.size > 1) {
      unsupported.push(`layer_types ${JSON.stringify(o.layer_types)} (layers of different attention kinds)`);
    }
  }
  if (starcoder2) {
    if (o.mlp_type !== undefined && o.mlp_type !== 'default') {
      unsupported.push(`mlp_type ${JSON.stringify(o.mlp_type)} (supported: "default")`);
    }
    if (o.norm_type !== undefined && o.norm_type !== 'layer_norm') {
      unsupported.push(`norm_type ${JSON.stringify(o.norm_type)} (supported: "layer_norm")`);
    }
  }
  const prf = o.partial_rotary_factor;
  if (prf !== undefined && prf !== null && prf !== 1) {
    unsupported.push(
      `partial_rotary_factor ${JSON.stringify(prf)} (rotary positions on every dimension only)`,
    );
  }
  if (family === 'qwen2' && o.attention_bias === false) {
    unsupported.push('attention_bias false (Qwen2 has q/k/v biases)');
  }
  commonUnsupported(o, unsupported);
  if (unsupported.length > 0) {
    throw new UnsupportedModelError(
      'unsupported-config',
      `${file}: unsupported ${family} settings: ${unsupported.join('; ')}.`,
      `The lab implements ${family} as Hugging Face's ${ARCHITECTURES[family]} computes it without these options; pick a model without them.`,
    );
  }
  const eos = o.eos_token_id;
  const config: LlamaFamilyConfig = {
    model_type: family,
    vocab_size: o.vocab_size as number,
    hidden_size: o.hidden_size as number,
    intermediate_size: o.intermediate_size as number,
    num_hidden_layers: o.num_hidden_layers as number,
    num_attention_heads: o.num_attention_heads as number,
    num_key_value_heads: (o.num_key_value_heads ?? null) as number | null,
    head_dim: (o.head_dim ?? null) as number | null,
    hidden_act: act as string,
    max_position_embeddings: o.max_position_embeddings as number,
    ...(starcoder2
      ? { norm_epsilon: (o.norm_epsilon ?? 1e-5) as number }
      : { rms_norm_eps: (o.rms_norm_eps ?? 1e-6) as number }),
    rope_theta: (o.rope_theta ?? 10000) as number,
    rope_scaling: ropeScaling ?? null,
    ...(family === 'llama'
      ? { attention_bias: o.attention_bias === true, mlp_bias: o.mlp_bias === true }
      : {}),
    ...(starcoder2 ? { use_bias: o.use_bias !== false } : {}),
    sliding_window: (o.sliding_window ?? null) as number | null,
    ...(starcoder2 ? {} : { use_sliding_window: useSlidingWindow }),
    // Hugging Face's defaults: LlamaConfig and Qwen2Config untied, StarCoder2 tied.
    tie_word_embeddings: (o.tie_word_embeddings ?? starcoder2) as boolean,
    pad_token_id: (o.pad_token_id ?? null) as number | null,
    bos_token_id: (o.bos_token_id ?? null) as number | null,
    eos_token_id: (Array.isArray(eos) ? eos : (eos ?? null)) as number | number[] | null,
  };
  try {
    resolveLlamaFamily(config);
  } catch (err) {
    if (err instanceof ConfigError) throw new ModelFormatError('bad-config', file, err.message, CONFIG_HINT);
    throw err;
  }
  // eos_token_id as a list (Llama 3: end of text and end of turn): each must be a token id.
  const eosIds = Array.isArray(eos) ? eos : [];
  const badEos = eosIds.filter((v) => !(Number.isInteger(v) && v >= 0 && v < (o.vocab_size as number)));
  if (badEos.length > 0) {
    throw new ModelFormatError(
      'bad-config',
      file,
      `eos_token_id lists ${JSON.stringify(badEos)}, not token ids in [0, ${String(o.vocab_size)}).`,
      CONFIG_HINT,
    );
  }
  return config;
}

const ARCHITECTURES: Record<LlamaFamily, string> = {
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  starcoder2: 'Starcoder2ForCausalLM',
};

/** The end-of-sequence id a config names (the first of a list), or null. */
export function configEosId(config: ModelConfig): number | null {
  const eos = config.eos_token_id;
  if (Array.isArray(eos)) return eos[0] ?? null;
  return eos ?? null;
}

/** The figures of a config that every family has, for messages and comparisons. */
export function configSummary(config: ModelConfig): {
  family: string;
  width: number;
  layers: number;
  heads: number;
  kvHeads: number;
  inner: number;
  vocab: number;
  maxPositions: number;
} {
  const d = describeDecoder(config);
  const a = d.blocks[0]?.attention;
  return {
    family: d.family,
    width: d.width,
    layers: d.blocks.length,
    heads: a?.nHead ?? 0,
    kvHeads: a?.kvHeads ?? 0,
    inner: d.blocks[0]?.mlp.inner ?? 0,
    vocab: d.vocab,
    maxPositions: d.maxPositions,
  };
}
