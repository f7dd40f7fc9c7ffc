/**
 * Known GPT-BigCode models: shapes (as in each repository's config.json), whether the repository is
 * gated, and memory figures from the engine's planner per weight format, checked against an adapter's
 * limits before loading, with a suggestion when a choice will not fit.
 *
 * Plain data and arithmetic: the page imports this module, so it (and what it imports: the memory
 * planner, the config and the size arithmetic) holds no GPU, kernel, shader or loader code
 * (tests/build/main-chunk.test.ts checks the built page).
 */
import type { GptBigCodeConfig } from '../engine/model/config.ts';
import { planMemory, type MemoryPlan } from '../engine/model/memory-plan.ts';
import { parameterCount } from '../engine/model/sizes.ts';
import { WEIGHT_FORMATS, type WeightFormat } from '../engine/quant.ts';
import { parseConfig } from './config.ts';

export interface ModelPreset {
  /** Hub repo id, or 'demo' for the embedded model. */
  id: string;
  label: string;
  /** Needs an access token and an accepted licence on the Hub. */
  gated: boolean;
  config: GptBigCodeConfig;
  /** Where the embedded demo model is served from (relative to the app's base URL). */
  staticPath?: string;
  /** The demo's file names (a static server cannot list). */
  staticFiles?: string[];
  note?: string;
  /**
   * Run-config fields this model needs instead of the paper's defaults (which are tuned for
   * WizardCoder-15B): e.g. a tiny model wants a higher learning rate. Validated by the trainer.
   */
  runDefaults?: Record<string, unknown>;
}

const common = { layer_norm_epsilon: 1e-5, multi_query: true, bos_token_id: 0, eos_token_id: 0 } as const;

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
];

export function findPreset(id: string): ModelPreset | undefined {
  return PRESETS.find((p) => p.id === id);
}

export function presetParameterCount(preset: ModelPreset): number {
  return parameterCount(parseConfig({ model_type: 'gpt_bigcode', ...preset.config }, preset.id));
}

export interface TrainingShape {
  loraRank: number;
  packLength: number;
  packsPerStep: number;
  recompute: boolean;
}

export const DEFAULT_TRAINING_SHAPE: TrainingShape = {
  loraRank: 8,
  packLength: 512,
  packsPerStep: 1,
  recompute: true,
};

/** Planner figures for each weight format. */
export function presetMemory(
  preset: ModelPreset,
  shape: TrainingShape = DEFAULT_TRAINING_SHAPE,
): Record<WeightFormat, MemoryPlan> {
  const out = {} as Record<WeightFormat, MemoryPlan>;
  for (const f of WEIGHT_FORMATS) {
    out[f] = planMemory({
      config: preset.config,
      weightFormat: f,
      loraRank: shape.loraRank,
      packLength: Math.min(shape.packLength, preset.config.n_positions),
      packsPerStep: shape.packsPerStep,
      recompute: shape.recompute,
      trainable: 'lora',
    });
  }
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
  shape: TrainingShape = DEFAULT_TRAINING_SHAPE,
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
    const smaller = PRESETS.filter(
      (p) => p.id !== preset.id && p.id !== 'demo' && presetMemory(p, shape).q4_0.total <= budget.memoryBytes,
    ).sort((a, b) => presetParameterCount(b) - presetParameterCount(a))[0];
    if (smaller && presetParameterCount(smaller) < presetParameterCount(preset)) {
      suggestions.push(`use a smaller model such as ${smaller.id}`);
    }
    if (suggestions.length === 0) suggestions.push('this model does not fit this GPU in any configuration');
  }
  return { fits, plan, suggestions };
}
