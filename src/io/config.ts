/**
 * config.json → validated GPT-BigCode config. The config type and its structural validation live in
 * the engine (src/engine/model/config.ts); this module parses the JSON, checks the fields a Hugging
 * Face config can carry that the lab does not implement, and names every unsupported value.
 */
import {
  ConfigError,
  resolveConfig,
  type GptBigCodeConfig,
  type ResolvedConfig,
} from '../engine/model/config.ts';
import { ModelFormatError, UnsupportedModelError } from './errors.ts';

export type { GptBigCodeConfig, ResolvedConfig };

const CONFIG_HINT = 'config.json must be a Hugging Face GPTBigCodeConfig (model_type "gpt_bigcode").';

/** Parses and validates the text of a config.json. */
export function parseConfigJson(text: string, file = 'config.json'): ResolvedConfig {
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
export function parseConfig(raw: unknown, file = 'config.json'): ResolvedConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelFormatError('bad-config', file, 'must be a JSON object.', CONFIG_HINT);
  }
  const o = raw as Record<string, unknown>;
  const unsupported: string[] = [];
  if (o.model_type !== 'gpt_bigcode') {
    const arch = Array.isArray(o.architectures) ? ` (architectures: ${o.architectures.join(', ')})` : '';
    throw new UnsupportedModelError(
      'unsupported-architecture',
      `${file}: model_type ${JSON.stringify(o.model_type)}${arch} is not supported; only "gpt_bigcode" (StarCoder, WizardCoder, SantaCoder) is.`,
      'Pick a GPT-BigCode model such as WizardLMTeam/WizardCoder-1B-V1.0 or bigcode/tiny_starcoder_py.',
    );
  }
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
  if (o.attention_softmax_in_fp32 === false && o.scale_attention_softmax_in_fp32 === true) {
    // Both only change fp16 numerics in PyTorch; the engine always computes softmax in f32.
  }
  if (o.add_cross_attention === true) unsupported.push('add_cross_attention true');
  if (o.tie_word_embeddings === false) unsupported.push('tie_word_embeddings false (untied lm_head)');
  if (o.rope_scaling !== undefined && o.rope_scaling !== null) unsupported.push('rope_scaling');
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
