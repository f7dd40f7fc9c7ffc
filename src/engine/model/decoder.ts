/**
 * A decoder-only transformer as the engine wires it, independent of its family:
 *
 *   embeddings → N × {norm, attention, residual, norm, MLP, residual} → final norm → head
 *
 * A family (GPT-BigCode today; Llama, Qwen2, StarCoder2 build on the same ops) supplies only this
 * description: which op each slot uses and the Hugging Face names of its parameters. The GPU step
 * (train-step.ts) and the parameter specs are built from the description alone, so a new family is a
 * new description, not a copy of the step.
 */
import type { GeluKind } from '../kernels/gelu.ts';
import {
  EMBEDDING_LORA_A,
  EMBEDDING_LORA_B,
  LINEAR_TARGETS,
  blockPrefix,
  linearShape,
  resolveConfig,
  type GptBigCodeConfig,
  type LinearTarget,
} from './config.ts';

/** A normalization over the model width: LayerNorm (weight + bias) or RMSNorm (weight only). */
export interface NormDesc {
  kind: 'layernorm' | 'rmsnorm';
  weight: string;
  /** LayerNorm's bias; null for RMSNorm. */
  bias: string | null;
  eps: number;
}

/** A linear module y = x·Wᵀ (+ b), the unit LoRA adapts and the weight format quantizes. */
export interface LinearDesc {
  /** Module name: the weight is `${module}.weight`, the bias `${module}.bias`, LoRA `${module}.lora_A.weight`. */
  module: string;
  /** The family's LoRA target name for this module (e.g. 'attn.c_attn'). */
  target: LinearTarget;
  out: number;
  in: number;
  bias: boolean;
  /** Index of this linear among every linear of the model: keys its LoRA dropout mask. */
  site: number;
}

export interface AttentionDesc {
  nHead: number;
  /** Key/value heads: 1 for multi-query, nHead for multi-head. */
  kvHeads: number;
  headDim: number;
  /** GPT-BigCode's multi-query row layout [q | k | v] (false: its per-head interleaved layout). */
  multiQuery: boolean;
  /** The linear writing the fused q/k/v row of each token. */
  qkv: LinearDesc;
  output: LinearDesc;
}

/** GPT-BigCode's MLP: down(gelu(up(x))). */
export interface GeluMlpDesc {
  kind: 'gelu';
  activation: GeluKind;
  up: LinearDesc;
  down: LinearDesc;
  inner: number;
}

export interface BlockDesc {
  norm1: NormDesc;
  attention: AttentionDesc;
  norm2: NormDesc;
  mlp: GeluMlpDesc;
}

export interface DecoderDesc {
  width: number;
  vocab: number;
  tokenEmbedding: string;
  /** Learned absolute positions (GPT-BigCode's wpe). */
  positionEmbedding: { weight: string; positions: number };
  /** LoRA on the token embedding (PEFT lora.Embedding) when 'wte' is a target. */
  embeddingLora: { a: string; b: string };
  blocks: BlockDesc[];
  finalNorm: NormDesc;
  /** The next-token head's weight [vocab, width]: the token embedding when tied. */
  lmHead: string;
  /** The classification head [2, width] (Hugging Face's *ForSequenceClassification `score`). */
  score: string;
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
    const linear = (target: LinearTarget): LinearDesc => {
      const [out, inp] = linearShape(c, target);
      const site = l * LINEAR_TARGETS.length + LINEAR_TARGETS.indexOf(target);
      return { module: `${prefix}.${target}`, target, out, in: inp, bias: true, site };
    };
    return {
      norm1: layerNorm(`${prefix}.ln_1`),
      attention: {
        nHead: c.n_head,
        kvHeads: c.kvHeads,
        headDim: c.headDim,
        multiQuery: c.multi_query,
        qkv: linear('attn.c_attn'),
        output: linear('attn.c_proj'),
      },
      norm2: layerNorm(`${prefix}.ln_2`),
      mlp: {
        kind: 'gelu',
        activation: c.activation_function,
        up: linear('mlp.c_fc'),
        down: linear('mlp.c_proj'),
        inner: c.n_inner,
      },
    };
  });
  return {
    width: c.n_embd,
    vocab: c.vocab_size,
    tokenEmbedding: 'transformer.wte.weight',
    positionEmbedding: { weight: 'transformer.wpe.weight', positions: c.n_positions },
    embeddingLora: { a: EMBEDDING_LORA_A, b: EMBEDDING_LORA_B },
    blocks,
    finalNorm: layerNorm('transformer.ln_f'),
    lmHead: 'transformer.wte.weight',
    score: 'score.weight',
  };
}

/** The linears of a block in the order they run. */
export function blockLinears(block: BlockDesc): LinearDesc[] {
  return [block.attention.qkv, block.attention.output, block.mlp.up, block.mlp.down];
}
