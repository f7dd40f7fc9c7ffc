/**
 * Known models: shapes (each repository's config.json, field for field), whether the repository is
 * gated, and memory figures from the engine's planner per weight format, checked against an adapter's
 * limits before loading, with a suggestion when a choice will not fit. Two families of configs:
 * GPT-BigCode (StarCoder, WizardCoder, SantaCoder, the demo model) and the Llama family (llama:
 * CodeLlama, WizardCoder-Python, DeepSeek-Coder; qwen2: Qwen2.5-Coder; starcoder2: StarCoder2).
 *
 * Plain data and arithmetic: the page imports this module, so it (and what it imports: the decoder
 * description, the memory planner, the config and the size arithmetic) holds no GPU, kernel, shader or
 * loader code (tests/build/main-chunk.test.ts checks the built page).
 */
import type { GptBigCodeConfig, LoraTarget } from '../engine/model/config.ts';
import { describeDecoder, type Family, type ModelConfig } from '../engine/model/decoder.ts';
import type { LlamaFamilyConfig } from '../engine/model/llama-family.ts';
import { planMemory, type MemoryPlan } from '../engine/model/memory-plan.ts';
import { parameterCount } from '../engine/model/sizes.ts';
import { WEIGHT_FORMATS, type WeightFormat } from '../engine/quant.ts';

export type { Family, ModelConfig };

export interface ModelPreset<C extends ModelConfig = ModelConfig> {
  /** Hub repo id, or 'demo' for the embedded model. */
  id: string;
  label: string;
  /** Needs an access token and an accepted licence on the Hub. */
  gated: boolean;
  /** The repository's config.json: GPT-BigCode's fields, or a Llama family's (with its model_type). */
  config: C;
  /** Where the embedded demo model is served from (relative to the app's base URL). */
  staticPath?: string;
  /** The demo's file names (a static server cannot list). */
  staticFiles?: string[];
  note?: string;
  /**
   * Run-config fields this model needs instead of the paper's defaults (which are tuned for
   * WizardCoder-15B): e.g. a tiny model wants a higher learning rate, and a Llama-family model names
   * its own LoRA targets. Validated by the trainer.
   */
  runDefaults?: Record<string, unknown>;
}

const common = { layer_norm_epsilon: 1e-5, multi_query: true, bos_token_id: 0, eos_token_id: 0 } as const;

/**
 * The LoRA targets of a Llama-family preset: every block linear, as the paper adapts every linear of
 * GPT-BigCode (run config default `lora.targets`); 'wte' stays available in the form.
 */
const linearTargets = (config: LlamaFamilyConfig): { lora: { targets: LoraTarget[] } } => ({
  lora: { targets: describeDecoder(config).loraTargets.filter((t) => t !== 'wte') },
});

/**
 * Qwen2.5-Coder (qwen2): https://huggingface.co/Qwen/Qwen2.5-Coder-{0.5B,1.5B,3B,7B}/blob/main/config.json.
 * All four: RMSNorm 1e-6, rope_theta 1e6, max_position_embeddings 32768, q/k/v biases, GQA with 2 (4
 * for 7B) K/V heads, bos = eos = 151643, use_sliding_window false (so their sliding_window values,
 * which the model ignores, are left out). 0.5B/1.5B/3B tie the LM head to the embedding (their model
 * cards: "tied word embeddings"; vocabulary 151936); 7B does not (vocabulary 152064; its safetensors
 * hold 7,615,616,512 parameters, the embedding and lm_head counted apart).
 */
const qwen2 = (
  shape: Pick<
    LlamaFamilyConfig,
    | 'vocab_size'
    | 'hidden_size'
    | 'intermediate_size'
    | 'num_hidden_layers'
    | 'num_attention_heads'
    | 'num_key_value_heads'
    | 'tie_word_embeddings'
  >,
): LlamaFamilyConfig => ({
  model_type: 'qwen2',
  ...shape,
  hidden_act: 'silu',
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  use_sliding_window: false,
  bos_token_id: 151643,
  eos_token_id: 151643,
});

/** CodeLlama-7b (llama): codellama/CodeLlama-7b-hf's config.json, whose shape WizardCoder-Python-7B keeps. */
const codeLlama7b = {
  model_type: 'llama',
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  hidden_act: 'silu',
  max_position_embeddings: 16384,
  rms_norm_eps: 1e-5,
  rope_theta: 1000000,
  rope_scaling: null,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
} as const satisfies Omit<LlamaFamilyConfig, 'vocab_size'>;

/**
 * StarCoder2 (starcoder2): https://huggingface.co/bigcode/starcoder2-{3b,7b,15b}/blob/main/config.json.
 * All three: LayerNorm 1e-5 with biases on every linear (use_bias), gelu_pytorch_tanh MLP (c_fc/c_proj),
 * max_position_embeddings 16384, sliding_window 4096, vocabulary 49152, bos = eos = 0.
 */
const starcoder2 = (
  shape: Pick<
    LlamaFamilyConfig,
    | 'hidden_size'
    | 'intermediate_size'
    | 'num_hidden_layers'
    | 'num_attention_heads'
    | 'num_key_value_heads'
    | 'rope_theta'
    | 'tie_word_embeddings'
  >,
): LlamaFamilyConfig => ({
  model_type: 'starcoder2',
  vocab_size: 49152,
  ...shape,
  hidden_act: 'gelu_pytorch_tanh',
  max_position_embeddings: 16384,
  norm_epsilon: 1e-5,
  use_bias: true,
  sliding_window: 4096,
  bos_token_id: 0,
  eos_token_id: 0,
});

const QWEN_CODER_05B = qwen2({
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  tie_word_embeddings: true,
});
const QWEN_CODER_15B = qwen2({
  vocab_size: 151936,
  hidden_size: 1536,
  intermediate_size: 8960,
  num_hidden_layers: 28,
  num_attention_heads: 12,
  num_key_value_heads: 2,
  tie_word_embeddings: true,
});
const QWEN_CODER_3B = qwen2({
  vocab_size: 151936,
  hidden_size: 2048,
  intermediate_size: 11008,
  num_hidden_layers: 36,
  num_attention_heads: 16,
  num_key_value_heads: 2,
  tie_word_embeddings: true,
});
const QWEN_CODER_7B = qwen2({
  vocab_size: 152064,
  hidden_size: 3584,
  intermediate_size: 18944,
  num_hidden_layers: 28,
  num_attention_heads: 28,
  num_key_value_heads: 4,
  tie_word_embeddings: false,
});
/**
 * deepseek-ai/deepseek-coder-1.3b-base's config.json (llama): MHA (16 K/V heads), rope_theta 1e5 with
 * linear position scaling ×4 to 16384 positions, untied head; bos 32013, eos 32014 (the -instruct
 * variant ends turns with 32021 instead).
 */
const DEEPSEEK_CODER_13B: LlamaFamilyConfig = {
  model_type: 'llama',
  vocab_size: 32256,
  hidden_size: 2048,
  intermediate_size: 5504,
  num_hidden_layers: 24,
  num_attention_heads: 16,
  num_key_value_heads: 16,
  hidden_act: 'silu',
  max_position_embeddings: 16384,
  rms_norm_eps: 1e-6,
  rope_theta: 100000,
  rope_scaling: { type: 'linear', factor: 4.0 },
  tie_word_embeddings: false,
  bos_token_id: 32013,
  eos_token_id: 32014,
};
const CODELLAMA_7B: LlamaFamilyConfig = { ...codeLlama7b, vocab_size: 32016 };
/**
 * WizardLMTeam/WizardCoder-Python-7B-V1.0 (llama): finetuned from CodeLlama-7b-Python, whose shape
 * and rope_theta 1e6 it keeps, with one token added ([PAD], id 32000) to CodeLlama-Python's 32000:
 * vocab_size 32001 (the model card and its tokenizer). Not read from the repository's config.json
 * here: the other values are CodeLlama-7b's as published (codeLlama7b above), and pad_token_id is
 * left unset.
 */
const WIZARDCODER_PYTHON_7B: LlamaFamilyConfig = { ...codeLlama7b, vocab_size: 32001 };
const STARCODER2_3B = starcoder2({
  hidden_size: 3072,
  intermediate_size: 12288,
  num_hidden_layers: 30,
  num_attention_heads: 24,
  num_key_value_heads: 2,
  rope_theta: 999999.4420358813,
});
const STARCODER2_7B = starcoder2({
  hidden_size: 4608,
  intermediate_size: 18432,
  num_hidden_layers: 32,
  num_attention_heads: 36,
  num_key_value_heads: 4,
  rope_theta: 1000000,
});
/**
 * 15B alone has its own LM head: its safetensors hold 15,957,889,024 parameters, the tied count plus
 * a [49152, 6144] lm_head (3B's 3,030,371,328 and 7B's 7,173,923,840 are the tied counts).
 */
const STARCODER2_15B = starcoder2({
  hidden_size: 6144,
  intermediate_size: 24576,
  num_hidden_layers: 40,
  num_attention_heads: 48,
  num_key_value_heads: 4,
  rope_theta: 100000,
  tie_word_embeddings: false,
});

export const PRESETS: readonly ModelPreset[] = [
  {
    id: 'demo',
    label: "VulnLab demo (tiny, pretrained on the JDK's Java sources)",
    gated: false,
    config: {
      ...common,
      vocab_size: 4096,
      n_embd: 64,
      n_layer: 2,
      n_head: 4,
      n_inner: 256,
      n_positions: 1024,
      activation_function: 'gelu_pytorch_tanh',
      pad_token_id: 4095,
    },
    staticPath: 'models/demo/',
    staticFiles: ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'],
    note: 'Pretrained with PyTorch by scripts/demo-model (card: public/models/demo/README.md); for trying the lab and for tests, not for real results.',
    // Measured (scripts/demo-model/README.md): a model this small learns the demo set only with an
    // adapter on the token embedding at a higher learning rate (per-token evidence); LoRA on the
    // linears alone stays near chance.
    runDefaults: {
      weightFormat: 'f32',
      lora: { targets: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj', 'wte'] },
      optimizer: { lr: 3e-3, embeddingLr: 3e-2 },
      batching: { packLength: 1024 },
      epochs: 5,
    },
  },
  {
    id: 'bigcode/tiny_starcoder_py',
    label: 'TinyStarCoder-Py (164M)',
    gated: false,
    config: {
      ...common,
      vocab_size: 49152,
      n_embd: 768,
      n_layer: 20,
      n_head: 12,
      n_inner: 3072,
      n_positions: 8192,
      activation_function: 'gelu_pytorch_tanh',
    },
  },
  {
    id: 'WizardLMTeam/WizardCoder-1B-V1.0',
    label: 'WizardCoder 1B',
    gated: false,
    config: {
      ...common,
      vocab_size: 49153,
      n_embd: 2048,
      n_layer: 24,
      n_head: 16,
      n_inner: 8192,
      n_positions: 8192,
      activation_function: 'gelu',
      pad_token_id: 49152,
    },
    note: '[PAD] = 49152 added to the StarCoder vocabulary.',
  },
  {
    id: 'WizardLMTeam/WizardCoder-3B-V1.0',
    label: 'WizardCoder 3B',
    gated: false,
    config: {
      ...common,
      vocab_size: 49153,
      n_embd: 2816,
      n_layer: 36,
      n_head: 22,
      n_inner: 11264,
      n_positions: 8192,
      activation_function: 'gelu',
      pad_token_id: 49152,
    },
  },
  {
    id: 'WizardLMTeam/WizardCoder-15B-V1.0',
    label: 'WizardCoder 15B',
    gated: false,
    config: {
      ...common,
      vocab_size: 49153,
      n_embd: 6144,
      n_layer: 40,
      n_head: 48,
      n_inner: 24576,
      n_positions: 8192,
      activation_function: 'gelu',
      pad_token_id: 49152,
    },
  },
  {
    id: 'bigcode/starcoderbase-1b',
    label: 'StarCoderBase 1B (gated)',
    gated: true,
    config: {
      ...common,
      vocab_size: 49152,
      n_embd: 2048,
      n_layer: 24,
      n_head: 16,
      n_inner: 8192,
      n_positions: 8192,
      activation_function: 'gelu_pytorch_tanh',
    },
    note: 'Gated: accept the licence on huggingface.co and enter a token.',
  },
  {
    id: 'bigcode/gpt_bigcode-santacoder',
    label: 'SantaCoder 1.1B',
    gated: false,
    config: {
      ...common,
      vocab_size: 49280,
      n_embd: 2048,
      n_layer: 24,
      n_head: 16,
      n_inner: 8192,
      n_positions: 2048,
      activation_function: 'gelu_pytorch_tanh',
    },
  },
  {
    id: 'Qwen/Qwen2.5-Coder-0.5B',
    label: 'Qwen2.5-Coder 0.5B',
    gated: false,
    config: QWEN_CODER_05B,
    runDefaults: linearTargets(QWEN_CODER_05B),
  },
  {
    id: 'Qwen/Qwen2.5-Coder-1.5B',
    label: 'Qwen2.5-Coder 1.5B',
    gated: false,
    config: QWEN_CODER_15B,
    runDefaults: linearTargets(QWEN_CODER_15B),
  },
  {
    id: 'Qwen/Qwen2.5-Coder-3B',
    label: 'Qwen2.5-Coder 3B',
    gated: false,
    config: QWEN_CODER_3B,
    note: 'Qwen Research licence (non-commercial), unlike the Apache-2.0 sizes.',
    runDefaults: linearTargets(QWEN_CODER_3B),
  },
  {
    id: 'Qwen/Qwen2.5-Coder-7B',
    label: 'Qwen2.5-Coder 7B',
    gated: false,
    config: QWEN_CODER_7B,
    runDefaults: linearTargets(QWEN_CODER_7B),
  },
  {
    id: 'deepseek-ai/deepseek-coder-1.3b-base',
    label: 'DeepSeek-Coder 1.3B (base)',
    gated: false,
    config: DEEPSEEK_CODER_13B,
    runDefaults: linearTargets(DEEPSEEK_CODER_13B),
  },
  {
    id: 'codellama/CodeLlama-7b-hf',
    label: 'CodeLlama 7B',
    gated: false,
    config: CODELLAMA_7B,
    runDefaults: linearTargets(CODELLAMA_7B),
  },
  {
    id: 'WizardLMTeam/WizardCoder-Python-7B-V1.0',
    label: 'WizardCoder-Python 7B',
    gated: false,
    config: WIZARDCODER_PYTHON_7B,
    note: '[PAD] = 32000 added to the CodeLlama-Python vocabulary.',
    runDefaults: linearTargets(WIZARDCODER_PYTHON_7B),
  },
  {
    id: 'bigcode/starcoder2-3b',
    label: 'StarCoder2 3B',
    gated: false,
    config: STARCODER2_3B,
    note: 'Sliding-window attention over 4096 keys: no effect on packs of at most 4096 tokens.',
    runDefaults: linearTargets(STARCODER2_3B),
  },
  {
    id: 'bigcode/starcoder2-7b',
    label: 'StarCoder2 7B',
    gated: false,
    config: STARCODER2_7B,
    note: 'Sliding-window attention over 4096 keys: no effect on packs of at most 4096 tokens.',
    runDefaults: linearTargets(STARCODER2_7B),
  },
  {
    id: 'bigcode/starcoder2-15b',
    label: 'StarCoder2 15B',
    gated: false,
    config: STARCODER2_15B,
    note: 'Sliding-window attention over 4096 keys: no effect on packs of at most 4096 tokens.',
    runDefaults: linearTargets(STARCODER2_15B),
  },
];

/** The GPT-BigCode presets' ids: findPreset types their config as GPT-BigCode's. */
export type GptBigCodePresetId =
  | 'demo'
  | 'bigcode/tiny_starcoder_py'
  | 'WizardLMTeam/WizardCoder-1B-V1.0'
  | 'WizardLMTeam/WizardCoder-3B-V1.0'
  | 'WizardLMTeam/WizardCoder-15B-V1.0'
  | 'bigcode/starcoderbase-1b'
  | 'bigcode/gpt_bigcode-santacoder';

export function findPreset(id: GptBigCodePresetId): ModelPreset<GptBigCodeConfig>;
export function findPreset(id: string): ModelPreset | undefined;
export function findPreset(id: string): ModelPreset | undefined {
  return PRESETS.find((p) => p.id === id);
}

/** How the lab names each family of configs. */
export const FAMILY_LABELS: Record<Family, string> = {
  gpt_bigcode: 'GPT-BigCode',
  llama: 'Llama',
  qwen2: 'Qwen2',
  starcoder2: 'StarCoder2',
};

/** The architecture facts the Model panel shows, from any config (throws ConfigError when invalid). */
export interface ModelFacts {
  family: Family;
  familyLabel: string;
  layers: number;
  width: number;
  heads: number;
  /** 1: multi-query; = heads: multi-head; in between: grouped-query. */
  kvHeads: number;
  headDim: number;
  /** MLP width. */
  inner: number;
  mlp: 'gelu' | 'swiglu';
  norm: 'layernorm' | 'rmsnorm';
  /** Positions the model takes (n_positions or max_position_embeddings). */
  context: number;
  vocab: number;
  /** The LM head is the token embedding. */
  tiedHead: boolean;
  positions: 'learned' | 'rotary';
  rope: { theta: number; scaling: number } | null;
  slidingWindow: number | null;
  parameters: number;
  /** LoRA targets the family offers (block linears, then 'wte'). */
  loraTargets: LoraTarget[];
}

export function modelFacts(config: ModelConfig): ModelFacts {
  const d = describeDecoder(config);
  const block = d.blocks[0];
  const attention = block?.attention;
  return {
    family: d.family,
    familyLabel: FAMILY_LABELS[d.family],
    layers: d.blocks.length,
    width: d.width,
    heads: attention?.nHead ?? 0,
    kvHeads: attention?.kvHeads ?? 0,
    headDim: attention?.headDim ?? 0,
    inner: block?.mlp.inner ?? 0,
    mlp: block?.mlp.kind ?? 'gelu',
    norm: d.finalNorm.kind,
    context: d.maxPositions,
    vocab: d.vocab,
    tiedHead: d.lmHead === d.tokenEmbedding,
    positions: d.positionEmbedding ? 'learned' : 'rotary',
    rope: attention?.rope ?? null,
    slidingWindow: attention?.slidingWindow ?? null,
    parameters: parameterCount(config),
    loraTargets: [...d.loraTargets],
  };
}

/** The LoRA targets a model offers: its family's block linears (in the order they run), then 'wte'. */
export function loraTargetsOf(config: ModelConfig): LoraTarget[] {
  return [...describeDecoder(config).loraTargets];
}

/** The base model's parameters (no score head, no LoRA; an untied LM head counted). */
export function presetParameterCount(preset: ModelPreset): number {
  return parameterCount(preset.config);
}

export interface TrainingShape {
  loraRank: number;
  packLength: number;
  packsPerStep: number;
  recompute: boolean;
  /** LoRA targets (the family's names); every block linear of the family when absent. */
  loraTargets?: readonly LoraTarget[];
}

export const DEFAULT_TRAINING_SHAPE: TrainingShape = {
  loraRank: 8,
  packLength: 512,
  packsPerStep: 1,
  recompute: true,
};

/**
 * A preset's default run settings as far as memory goes: DEFAULT_TRAINING_SHAPE with what the
 * preset's runDefaults set (rank, pack length, packs per step, recomputation, LoRA targets).
 */
export function presetShape(preset: ModelPreset): TrainingShape {
  const d = (preset.runDefaults ?? {}) as {
    lora?: { r?: unknown; targets?: unknown };
    batching?: { packLength?: unknown; packsPerStep?: unknown };
    recompute?: unknown;
  };
  const int = (v: unknown, fallback: number) =>
    Number.isInteger(v) && (v as number) > 0 ? (v as number) : fallback;
  const shape: TrainingShape = {
    loraRank: int(d.lora?.r, DEFAULT_TRAINING_SHAPE.loraRank),
    packLength: int(d.batching?.packLength, DEFAULT_TRAINING_SHAPE.packLength),
    packsPerStep: int(d.batching?.packsPerStep, DEFAULT_TRAINING_SHAPE.packsPerStep),
    recompute: typeof d.recompute === 'boolean' ? d.recompute : DEFAULT_TRAINING_SHAPE.recompute,
  };
  if (Array.isArray(d.lora?.targets)) shape.loraTargets = d.lora.targets as LoraTarget[];
  return shape;
}

// The Model panel checks every preset in every format (and the suggestions re-plan other presets):
// the plans are pure functions of (preset, shape), so each is computed once.
const memoryCache = new WeakMap<ModelPreset, Map<string, Record<WeightFormat, MemoryPlan>>>();

/** Planner figures for each weight format (at the preset's default run settings unless given). */
export function presetMemory(
  preset: ModelPreset,
  shape: TrainingShape = presetShape(preset),
): Record<WeightFormat, MemoryPlan> {
  const key = JSON.stringify([
    shape.loraRank,
    shape.packLength,
    shape.packsPerStep,
    shape.recompute,
    shape.loraTargets ?? null,
  ]);
  let byShape = memoryCache.get(preset);
  if (!byShape) memoryCache.set(preset, (byShape = new Map()));
  const cached = byShape.get(key);
  if (cached) return cached;
  const maxPositions = describeDecoder(preset.config).maxPositions;
  const out = {} as Record<WeightFormat, MemoryPlan>;
  for (const f of WEIGHT_FORMATS) {
    out[f] = planMemory({
      config: preset.config,
      weightFormat: f,
      loraRank: shape.loraRank,
      packLength: Math.min(shape.packLength, maxPositions),
      packsPerStep: shape.packsPerStep,
      recompute: shape.recompute,
      trainable: 'lora',
      ...(shape.loraTargets ? { loraTargets: shape.loraTargets } : {}),
    });
  }
  byShape.set(key, out);
  return out;
}

export interface AdapterBudget {
  /** Bytes of GPU memory the lab may use (an estimate; WebGPU does not report it). */
  memoryBytes: number;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

export interface FitCheck {
  fits: boolean;
  plan: MemoryPlan;
  /** What to change when it does not fit; empty when it fits. */
  suggestions: string[];
}

/**
 * Whether a preset in a weight format fits a budget. Tensors over the binding limit are split by the
 * engine, so only the total is a hard limit; the largest binding is reported for information.
 */
export function checkFit(
  preset: ModelPreset,
  format: WeightFormat,
  budget: AdapterBudget,
  shape: TrainingShape = presetShape(preset),
): FitCheck {
  const plan = presetMemory(preset, shape)[format];
  const fits = plan.total <= budget.memoryBytes;
  const suggestions: string[] = [];
  if (!fits) {
    if (format !== 'q4_0' && presetMemory(preset, shape).q4_0.total <= budget.memoryBytes) {
      suggestions.push('use q4_0 weights');
    }
    if (
      !shape.recompute &&
      presetMemory(preset, { ...shape, recompute: true })[format].total <= budget.memoryBytes
    ) {
      suggestions.push('turn on activation recomputation');
    }
    if (shape.packLength > 256) {
      const shorter = presetMemory(preset, { ...shape, packLength: 256 })[format].total;
      if (shorter <= budget.memoryBytes) suggestions.push('use a pack length of 256');
    }
    // Another family names its LoRA targets otherwise: other presets are planned with all of theirs.
    const others: TrainingShape = { ...shape, loraTargets: undefined };
    const smaller = PRESETS.filter(
      (p) =>
        p.id !== preset.id && p.id !== 'demo' && presetMemory(p, others).q4_0.total <= budget.memoryBytes,
    ).sort((a, b) => presetParameterCount(b) - presetParameterCount(a))[0];
    if (smaller && presetParameterCount(smaller) < presetParameterCount(preset)) {
      suggestions.push(`use a smaller model such as ${smaller.id}`);
    }
    if (suggestions.length === 0) suggestions.push('this model does not fit this GPU in any configuration');
  }
  return { fits, plan, suggestions };
}
