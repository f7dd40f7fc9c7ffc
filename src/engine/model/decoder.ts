/**
 * A decoder-only transformer as the engine wires it, independent of its family:
 *
 *   embeddings → N × {norm, attention, residual, norm, MLP, residual} → final norm → head
 *
 * A family supplies only this description: which op each slot uses and the Hugging Face names of its
 * parameters. The GPU step (train-step.ts), the parameter specs below and the float64 reference are
 * built from the description alone, so a new family is a new description, not a copy of the step.
 * Families: GPT-BigCode (StarCoder, WizardCoder; config.ts) and the Llama family (llama, qwen2,
 * starcoder2; llama-family.ts).
 */
import type { GeluKind } from '../kernels/gelu.ts';
import type { AttentionKernelShape } from './sizes.ts';
import {
  ConfigError,
  EMBEDDING_LORA_A,
  EMBEDDING_LORA_B,
  LINEAR_TARGETS,
  blockPrefix,
  linearShape,
  loraScaling,
  resolveConfig,
  type GptBigCodeConfig,
  type LoraConfig,
  type LoraTarget,
  type ParamSpec,
  type Trainable,
} from './config.ts';
import {
  LLAMA_FAMILIES,
  resolveLlamaFamily,
  type LlamaFamily,
  type LlamaFamilyConfig,
} from './llama-family.ts';

/** Any model config the engine builds: GPT-BigCode's (no or 'gpt_bigcode' model_type) or a Llama family's. */
export type ModelConfig = GptBigCodeConfig | LlamaFamilyConfig;
export type Family = 'gpt_bigcode' | LlamaFamily;

export function isLlamaFamily(config: ModelConfig): config is LlamaFamilyConfig {
  const type = (config as { model_type?: unknown }).model_type;
  return LLAMA_FAMILIES.includes(type as LlamaFamily);
}

/** A normalization over the model width: LayerNorm (weight + optional bias) or RMSNorm (weight). */
export interface NormDesc {
  kind: 'layernorm' | 'rmsnorm';
  weight: string;
  bias: string | null;
  eps: number;
}

/** A linear module y = x·Wᵀ (+ b), the unit LoRA adapts and the weight format quantizes. */
export interface LinearDesc {
  /** Module name: weight `${module}.weight`, bias `${module}.bias`, LoRA `${module}.lora_A.weight`. */
  module: string;
  /** Its LoRA target: the module path inside a block (e.g. 'attn.c_attn', 'self_attn.q_proj'). */
  target: LoraTarget;
  out: number;
  in: number;
  bias: boolean;
  /** Index of this linear among every linear of the model: keys its LoRA dropout mask. */
  site: number;
}

export interface AttentionDesc {
  nHead: number;
  /** Key/value heads: 1 (multi-query) … nHead (multi-head); groups of nHead/kvHeads query heads share one. */
  kvHeads: number;
  headDim: number;
  /**
   * Layout of each token's fused q/k/v row: 'grouped' [q: nHead·hd | k: kvHeads·hd | v: kvHeads·hd]
   * (GPT-BigCode multi-query, the Llama family), or GPT-BigCode multi-head's per-head 'interleaved'.
   */
  layout: 'grouped' | 'interleaved';
  /** One linear writing the whole row (GPT-BigCode's c_attn), or q, k and v side by side in the row. */
  projections: LinearDesc[];
  output: LinearDesc;
  /** Rotary positions (rotate-half) on q and k with linear position scaling; null: none. */
  rope: { theta: number; scaling: number } | null;
  /** Keys per query, itself included (StarCoder2); null: the whole causal segment. */
  slidingWindow: number | null;
}

export type MlpDesc =
  /** down(gelu(up(x))): GPT-BigCode's c_fc/c_proj, StarCoder2's. */
  | { kind: 'gelu'; activation: GeluKind; up: LinearDesc; down: LinearDesc; inner: number }
  /** down(silu(gate(x))·up(x)): Llama, Qwen2. */
  | { kind: 'swiglu'; gate: LinearDesc; up: LinearDesc; down: LinearDesc; inner: number };

export interface BlockDesc {
  norm1: NormDesc;
  attention: AttentionDesc;
  norm2: NormDesc;
  mlp: MlpDesc;
}

export interface DecoderDesc {
  family: Family;
  width: number;
  vocab: number;
  tokenEmbedding: string;
  /** Learned absolute positions (GPT-BigCode's wpe); null with rotary positions. */
  positionEmbedding: { weight: string } | null;
  /** Position ids must lie below this (wpe rows, or max_position_embeddings). */
  maxPositions: number;
  /** PEFT names of the token embedding's LoRA (target 'wte'). */
  embeddingLora: { a: string; b: string };
  blocks: BlockDesc[];
  finalNorm: NormDesc;
  /** The next-token head's weight [vocab, width]: the token embedding when tied. */
  lmHead: string;
  /** The classification head [2, width] (Hugging Face's *ForSequenceClassification `score`). */
  score: string;
  /** The LoRA targets this family has: its block linears' targets, then 'wte'. */
  loraTargets: LoraTarget[];
}

/** The description of any supported config. */
export function describeDecoder(config: ModelConfig): DecoderDesc {
  return isLlamaFamily(config) ? llamaFamilyDecoder(config) : gptBigCodeDecoder(config);
}

/** The linears of a block in the order they run. */
export function blockLinears(block: BlockDesc): LinearDesc[] {
  const { attention, mlp } = block;
  const mlpLinears = mlp.kind === 'gelu' ? [mlp.up, mlp.down] : [mlp.gate, mlp.up, mlp.down];
  return [...attention.projections, attention.output, ...mlpLinears];
}

/** Builds each block's linears with model-wide LoRA sites, in the order `targets` lists them. */
function linearsOf<T extends LoraTarget>(
  layer: number,
  prefix: string,
  targets: readonly T[],
  shape: (target: T) => { out: number; in: number; bias: boolean },
): Record<T, LinearDesc> {
  const out = {} as Record<T, LinearDesc>;
  targets.forEach((target, i) => {
    out[target] = {
      module: `${prefix}.${target}`,
      target,
      site: layer * targets.length + i,
      ...shape(target),
    };
  });
  return out;
}

/** GPT-BigCode (StarCoder, WizardCoder, SantaCoder) as a decoder description. */
export function gptBigCodeDecoder(config: GptBigCodeConfig): DecoderDesc {
  const c = resolveConfig(config);
  const eps = c.layer_norm_epsilon;
  const layerNorm = (name: string): NormDesc => ({
    kind: 'layernorm',
    weight: `${name}.weight`,
    bias: `${name}.bias`,
    eps,
  });
  const blocks = Array.from({ length: c.n_layer }, (_, l): BlockDesc => {
    const prefix = blockPrefix(l);
    const linear = linearsOf(l, prefix, LINEAR_TARGETS, (target) => {
      const [out, inp] = linearShape(c, target);
      return { out, in: inp, bias: true };
    });
    return {
      norm1: layerNorm(`${prefix}.ln_1`),
      attention: {
        nHead: c.n_head,
        kvHeads: c.kvHeads,
        headDim: c.headDim,
        layout: c.multi_query ? 'grouped' : 'interleaved',
        projections: [linear['attn.c_attn']],
        output: linear['attn.c_proj'],
        rope: null,
        slidingWindow: null,
      },
      norm2: layerNorm(`${prefix}.ln_2`),
      mlp: {
        kind: 'gelu',
        activation: c.activation_function,
        up: linear['mlp.c_fc'],
        down: linear['mlp.c_proj'],
        inner: c.n_inner,
      },
    };
  });
  return {
    family: 'gpt_bigcode',
    width: c.n_embd,
    vocab: c.vocab_size,
    tokenEmbedding: 'transformer.wte.weight',
    positionEmbedding: { weight: 'transformer.wpe.weight' },
    maxPositions: c.n_positions,
    embeddingLora: { a: EMBEDDING_LORA_A, b: EMBEDDING_LORA_B },
    blocks,
    finalNorm: layerNorm('transformer.ln_f'),
    lmHead: 'transformer.wte.weight',
    score: 'score.weight',
    loraTargets: [...LINEAR_TARGETS, 'wte'],
  };
}

/** The Llama family's block linears (StarCoder2's MLP is c_fc/c_proj, the others' gate/up/down). */
const LLAMA_ATTENTION_TARGETS = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
] as const;
const SWIGLU_TARGETS = ['mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'] as const;
const GELU_TARGETS = ['mlp.c_fc', 'mlp.c_proj'] as const;

/** Llama, Qwen2 and StarCoder2 (Hugging Face's LlamaModel / Qwen2Model / Starcoder2Model names). */
export function llamaFamilyDecoder(config: LlamaFamilyConfig): DecoderDesc {
  const r = resolveLlamaFamily(config);
  const norm = (name: string): NormDesc => ({
    kind: r.norm,
    weight: `${name}.weight`,
    bias: r.norm === 'layernorm' ? `${name}.bias` : null,
    eps: r.eps,
  });
  const mlpTargets = r.mlp === 'swiglu' ? SWIGLU_TARGETS : GELU_TARGETS;
  const targets = [...LLAMA_ATTENTION_TARGETS, ...mlpTargets];
  const qDim = r.nHead * r.headDim;
  const kvDim = r.kvHeads * r.headDim;
  const shapes: Record<(typeof targets)[number], { out: number; in: number; bias: boolean }> = {
    'self_attn.q_proj': { out: qDim, in: r.width, bias: r.qkvBias },
    'self_attn.k_proj': { out: kvDim, in: r.width, bias: r.qkvBias },
    'self_attn.v_proj': { out: kvDim, in: r.width, bias: r.qkvBias },
    'self_attn.o_proj': { out: r.width, in: qDim, bias: r.outputBias },
    'mlp.gate_proj': { out: r.inner, in: r.width, bias: r.mlpBias },
    'mlp.up_proj': { out: r.inner, in: r.width, bias: r.mlpBias },
    'mlp.down_proj': { out: r.width, in: r.inner, bias: r.mlpBias },
    'mlp.c_fc': { out: r.inner, in: r.width, bias: r.mlpBias },
    'mlp.c_proj': { out: r.width, in: r.inner, bias: r.mlpBias },
  };
  const blocks = Array.from({ length: r.layers }, (_, l): BlockDesc => {
    const prefix = `model.layers.${l}`;
    const linear = linearsOf(l, prefix, targets, (t) => shapes[t]);
    const mlp: MlpDesc =
      r.mlp === 'swiglu'
        ? {
            kind: 'swiglu',
            gate: linear['mlp.gate_proj'],
            up: linear['mlp.up_proj'],
            down: linear['mlp.down_proj'],
            inner: r.inner,
          }
        : {
            kind: 'gelu',
            activation: r.mlp,
            up: linear['mlp.c_fc'],
            down: linear['mlp.c_proj'],
            inner: r.inner,
          };
    return {
      norm1: norm(`${prefix}.input_layernorm`),
      attention: {
        nHead: r.nHead,
        kvHeads: r.kvHeads,
        headDim: r.headDim,
        layout: 'grouped',
        projections: [linear['self_attn.q_proj'], linear['self_attn.k_proj'], linear['self_attn.v_proj']],
        output: linear['self_attn.o_proj'],
        rope: { theta: r.ropeTheta, scaling: r.ropeScaling },
        slidingWindow: r.slidingWindow,
      },
      norm2: norm(`${prefix}.post_attention_layernorm`),
      mlp,
    };
  });
  return {
    family: r.family,
    width: r.width,
    vocab: r.vocab,
    tokenEmbedding: 'model.embed_tokens.weight',
    positionEmbedding: null,
    maxPositions: r.maxPositions,
    embeddingLora: { a: 'model.embed_tokens.lora_embedding_A', b: 'model.embed_tokens.lora_embedding_B' },
    blocks,
    finalNorm: norm('model.norm'),
    lmHead: r.tiedEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight',
    score: 'score.weight',
    loraTargets: [...targets, 'wte'],
  };
}

/** The attention kernels' shape (kernels/attention.ts row layouts) of a block for T tokens. */
export function attentionKernelShape(T: number, a: AttentionDesc): AttentionKernelShape {
  const { nHead, headDim, kvHeads } = a;
  if (a.layout === 'interleaved') return { T, nHead, headDim, multiQuery: false };
  if (kvHeads === 1) return { T, nHead, headDim, multiQuery: true };
  return { T, nHead, headDim, multiQuery: false, kvHeads };
}

/** The q/k/v row width of a block's attention: nHead + 2·kvHeads heads. */
export function qkvWidth(attention: AttentionDesc): number {
  return (attention.nHead + 2 * attention.kvHeads) * attention.headDim;
}

/**
 * Hugging Face names and shapes of every base parameter, in checkpoint order (embeddings, each block,
 * final norm), then the head: the classifier when `withScore`, else an untied LM head if there is one.
 */
export function baseParamSpecs(config: ModelConfig, withScore = true): ParamSpec[] {
  const d = describeDecoder(config);
  const D = d.width;
  const specs: ParamSpec[] = [{ name: d.tokenEmbedding, shape: [d.vocab, D], kind: 'embedding' }];
  if (d.positionEmbedding) {
    specs.push({ name: d.positionEmbedding.weight, shape: [d.maxPositions, D], kind: 'embedding' });
  }
  const norm = (n: NormDesc, layer?: number): ParamSpec[] =>
    [n.weight, n.bias]
      .filter((name): name is string => name !== null)
      .map((name) => ({ name, shape: [D], kind: 'norm', ...(layer === undefined ? {} : { layer }) }));
  d.blocks.forEach((block, layer) => {
    const linear = (l: LinearDesc): ParamSpec[] => [
      { name: `${l.module}.weight`, shape: [l.out, l.in], kind: 'linear-weight', layer },
      ...(l.bias ? [{ name: `${l.module}.bias`, shape: [l.out], kind: 'linear-bias' as const, layer }] : []),
    ];
    const { attention, mlp } = block;
    specs.push(...norm(block.norm1, layer), ...[...attention.projections, attention.output].flatMap(linear));
    const mlpLinears = mlp.kind === 'gelu' ? [mlp.up, mlp.down] : [mlp.gate, mlp.up, mlp.down];
    specs.push(...norm(block.norm2, layer), ...mlpLinears.flatMap(linear));
  });
  specs.push(...norm(d.finalNorm));
  // The objective's head: the classifier (as *ForSequenceClassification, which has no LM head) or
  // an untied LM head (*ForCausalLM).
  if (withScore) specs.push({ name: d.score, shape: [2, D], kind: 'head' });
  else if (d.lmHead !== d.tokenEmbedding) specs.push({ name: d.lmHead, shape: [d.vocab, D], kind: 'head' });
  return specs;
}

/**
 * LoRA parameter names (PEFT style): `<module>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r] per
 * targeted block linear, then the token embedding's `lora_embedding_A` [r, V] and `_B` [D, r].
 */
export function loraParamSpecs(config: ModelConfig, lora: LoraConfig): ParamSpec[] {
  const d = describeDecoder(config);
  loraScaling(lora, d.loraTargets);
  const specs: ParamSpec[] = [];
  d.blocks.forEach((block, layer) => {
    for (const l of blockLinears(block)) {
      if (!lora.targets.includes(l.target)) continue;
      specs.push({ name: `${l.module}.lora_A.weight`, shape: [lora.r, l.in], kind: 'lora-A', layer });
      specs.push({ name: `${l.module}.lora_B.weight`, shape: [l.out, lora.r], kind: 'lora-B', layer });
    }
  });
  if (lora.targets.includes('wte')) {
    specs.push({ name: d.embeddingLora.a, shape: [lora.r, d.vocab], kind: 'lora-embedding-A' });
    specs.push({ name: d.embeddingLora.b, shape: [d.width, lora.r], kind: 'lora-embedding-B' });
  }
  return specs;
}

/**
 * The parameters that receive gradients: LoRA A/B plus the score head ('lora'), or every base weight
 * including the score head ('all'; LoRA, if present, is trained too).
 */
export function trainableSpecs(
  config: ModelConfig,
  lora: LoraConfig | null,
  trainable: Trainable,
  withScore = true,
): ParamSpec[] {
  const loraSpecs = lora ? loraParamSpecs(config, lora) : [];
  if (trainable === 'all') return [...baseParamSpecs(config, withScore), ...loraSpecs];
  if (!lora) throw new ConfigError('trainable "lora" needs a LoRA config.');
  const d = describeDecoder(config);
  const head = withScore ? [{ name: d.score, shape: [2, d.width], kind: 'head' as const }] : [];
  return [...loraSpecs, ...head];
}
