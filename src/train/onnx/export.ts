/**
 * Export of a finetuned detector to ONNX: the base weights (GPT-BigCode, Llama, Qwen2 or StarCoder2, as
 * their decoder description names them) with the LoRA update merged in
 * (W + alpha/r·B·A) and the score head, as one graph (graph.ts) in f32, f16, int8 or int4 weights
 * (weights.ts), written with onnx-proto. Alongside: tokenizer.json, detector.json (inputs, outputs,
 * tokenization, the threshold chosen on validation) and a README. Initializers move to an external
 * data file (`<model>.data`, ONNX `location/offset/length`) when they would not fit a 2 GB protobuf.
 */
import { VulnLabError } from '../../shared/errors.ts';
import { resolveConfig, type ResolvedConfig } from '../../engine/model/config.ts';
import {
  describeDecoder,
  isLlamaFamily,
  type AttentionDesc,
  type Family,
  type LinearDesc,
  type MlpDesc,
  type ModelConfig,
  type NormDesc,
} from '../../engine/model/decoder.ts';
import type { LlamaFamily } from '../../engine/model/llama-family.ts';
import type { NormalizeOptions } from '../../data/normalize.ts';
import type { ModelFiles } from '../../io/files.ts';
import type { NtpAnswers } from '../types.ts';
import {
  BLOCK_SIZE,
  INPUT_NAMES,
  IR_VERSION,
  MS_DOMAIN,
  MS_OPSET,
  ONNX_OPSET,
  OUTPUT_NAMES,
  buildDetectorGraph,
  type BlockWeights,
  type DetectorWeights,
  type Initializer,
  type LinearWeights,
  type MlpWeights,
  type NormWeights,
} from './graph.ts';
import { onnx, type OnnxTypes } from './proto.ts';
import {
  bytesOf,
  mergeLora,
  toBlockInt8,
  toF16Bytes,
  toNBits4,
  transpose,
  type OnnxWeightFormat,
} from './weights.ts';

export const DETECTOR_METADATA_KEY = 'vulnlab.detector';
export const DETECTOR_FORMAT = 'vulnlab-detector';
/** A protobuf message cannot exceed 2 GiB; above this the initializers go to external data. */
export const DEFAULT_MAX_INLINE_BYTES = 1.75 * 2 ** 30;
/** Tensors smaller than this stay inline even when the rest goes external (as onnx's own converter does). */
export const EXTERNAL_MIN_BYTES = 1024;
/** External tensors start on 4 KiB boundaries so runtimes can memory-map them. */
export const EXTERNAL_ALIGNMENT = 4096;

export class OnnxExportError extends VulnLabError {
  constructor(message: string, hint: string) {
    super('bad-input', message, hint);
  }
}

/** How code becomes `input_ids`: what the detector was trained with. */
export interface DetectorTokenization {
  /** Code tokens kept per function (the run's pack length − 1); longer functions are cut. */
  maxTokens: number;
  truncation: 'head' | 'tail' | 'drop';
  normalize: NormalizeOptions;
  /** Id used for right padding (masked out, any id works). */
  padId: number;
  /**
   * Token ids placed before and after the (cut) code, as the run framed it (prepare.ts codeFrame): the
   * tokenizer's BOS where it adds one, and for next-token detectors the paper's prompt. Absent in
   * exports from before it was recorded (nothing around the code).
   */
  frame?: { before: number[]; after: number[] };
}

export interface DetectorMetadata {
  format: typeof DETECTOR_FORMAT;
  version: 1;
  baseModel: string;
  weightFormat: OnnxWeightFormat;
  /** Probability at or above which a function is reported vulnerable (chosen on validation); null if unknown. */
  threshold: number | null;
  inputs: Record<(typeof INPUT_NAMES)[number], string>;
  outputs: Record<(typeof OUTPUT_NAMES)[number], string>;
  tokenizer: DetectorTokenization & { file: string };
  /**
   * 'cls': the adapter's score head; 'ntp': a next-token (CAUSAL_LM) adapter, its two logits the LM
   * head's " NO" and " YES" logits after the prompt.
   */
  objective: 'cls' | 'ntp';
  /** ntp: the answer tokens whose LM-head rows are the two logits. */
  answers?: NtpAnswers;
  model: DetectorModelInfo;
  lora: { r: number; alpha: number; targets: string[] } | null;
  opsets: Record<string, number>;
  operators: string[];
  files: { model: string; externalData: string | null; tokenizer: string };
}

/** GPT-BigCode's shape, in its config.json names. */
export type GptBigCodeModelInfo = Pick<
  ResolvedConfig,
  | 'vocab_size'
  | 'n_embd'
  | 'n_layer'
  | 'n_head'
  | 'n_inner'
  | 'n_positions'
  | 'multi_query'
  | 'activation_function'
>;

/**
 * A Llama-family model's shape: the same fields as GPT-BigCode's (so a reader of `vocab_size` or
 * `n_head` needs no family switch; n_embd = hidden_size, n_inner = intermediate_size, n_positions =
 * max_position_embeddings), with model_type and what the family adds.
 */
export interface LlamaFamilyModelInfo extends Omit<GptBigCodeModelInfo, 'activation_function'> {
  model_type: LlamaFamily;
  /** num_key_value_heads (grouped-query attention). */
  n_kv_head: number;
  head_dim: number;
  activation_function: 'silu' | 'gelu' | 'gelu_pytorch_tanh';
  norm: 'rmsnorm' | 'layernorm';
  norm_epsilon: number;
  rope_theta: number;
  /** Linear rope_scaling factor (1: none). */
  rope_scaling: number;
  sliding_window: number | null;
}

export type DetectorModelInfo = GptBigCodeModelInfo | LlamaFamilyModelInfo;

/** What detector.json records of the model. */
export function detectorModelInfo(config: ModelConfig): DetectorModelInfo {
  if (!isLlamaFamily(config)) {
    const c = resolveConfig(config);
    return {
      vocab_size: c.vocab_size,
      n_embd: c.n_embd,
      n_layer: c.n_layer,
      n_head: c.n_head,
      n_inner: c.n_inner,
      n_positions: c.n_positions,
      multi_query: c.multi_query,
      activation_function: c.activation_function,
    };
  }
  const d = describeDecoder(config);
  const { attention, mlp, norm1 } = d.blocks[0];
  return {
    model_type: config.model_type,
    vocab_size: d.vocab,
    n_embd: d.width,
    n_layer: d.blocks.length,
    n_head: attention.nHead,
    n_kv_head: attention.kvHeads,
    head_dim: attention.headDim,
    multi_query: attention.kvHeads === 1,
    n_inner: mlp.inner,
    n_positions: d.maxPositions,
    activation_function: mlp.kind === 'swiglu' ? 'silu' : mlp.activation,
    norm: norm1.kind,
    norm_epsilon: norm1.eps,
    rope_theta: attention.rope?.theta ?? 10000,
    rope_scaling: attention.rope?.scaling ?? 1,
    sliding_window: attention.slidingWindow,
  };
}

const FAMILY_NAMES: Record<Family, string> = {
  gpt_bigcode: 'GPT-BigCode',
  llama: 'Llama',
  qwen2: 'Qwen2',
  starcoder2: 'StarCoder2',
};

export interface OnnxExportOptions {
  format: OnnxWeightFormat;
  tokenization: DetectorTokenization;
  /**
   * A next-token (CAUSAL_LM) adapter's answer tokens: the detector's logits become the LM head's rows
   * for " NO" and " YES" at the prompt's last token (the lab's next-token score). Needs
   * the prompt in `tokenization.frame`.
   */
  answers?: NtpAnswers;
  /** The model's tokenizer.json (and tokenizer_config.json when it has one), copied next to the model. */
  tokenizerFiles: { name: string; bytes: Uint8Array }[];
  threshold?: number | null;
  /** File name of the model (default model.onnx). */
  modelFile?: string;
  /** Initializer bytes above which tensors go to external data (default 1.75 GiB). */
  maxInlineBytes?: number;
  onProgress?: (done: number, total: number) => void;
}

/** A file of the export as chunks (external data can exceed what one array may hold). */
export interface OnnxExportFile {
  name: string;
  chunks: Uint8Array[];
  size: number;
}

export interface OnnxExport {
  files: OnnxExportFile[];
  metadata: DetectorMetadata;
}

/** What the export reads of an adapter (an ImportedAdapter fits; so does a finished run's trainables). */
export interface DetectorAdapter {
  config: { r: number; alpha: number; targets: readonly string[] };
  /** LoRA A/B pairs, score.weight, and for a full finetune any base weight it replaces. */
  tensors: ReadonlyMap<string, ArrayLike<number>>;
}

export interface DetectorSource {
  /** "demo", a Hub id or a folder: recorded in the metadata. */
  name: string;
  /** GPT-BigCode's config or a Llama family's (model_type llama, qwen2, starcoder2). */
  config: ModelConfig;
  /** Base weights by Hugging Face name. */
  weights: ReadonlyMap<string, ArrayLike<number>>;
}

const textFile = (name: string, text: string): OnnxExportFile => {
  const bytes = new TextEncoder().encode(text);
  return { name, chunks: [bytes], size: bytes.byteLength };
};

/** Base weights with the adapter's tensors on top (score head, or every weight for a full finetune). */
function weightReader(source: DetectorSource, adapter: DetectorAdapter | null) {
  const used = new Set<string>();
  const get = (name: string): ArrayLike<number> => {
    const fromAdapter = adapter?.tensors.get(name);
    if (fromAdapter) {
      used.add(name);
      return fromAdapter;
    }
    const base = source.weights.get(name);
    if (!base) {
      throw new OnnxExportError(
        `${name} is missing from the model${adapter ? ' and the adapter' : ''}.`,
        name === 'score.weight'
          ? 'The score head comes with the adapter (modules_to_save: score); export the adapter of a finished run.'
          : 'Load the base model the adapter was trained on.',
      );
    }
    return base;
  };
  const lora = (name: string): ArrayLike<number> | undefined => {
    const t = adapter?.tensors.get(name);
    if (t) used.add(name);
    return t;
  };
  const unused = () => [...(adapter?.tensors.keys() ?? [])].filter((n) => !used.has(n));
  return { get, lora, unused };
}

function f32Copy(values: ArrayLike<number>): Float32Array {
  return Float32Array.from(values);
}

function checkLength(name: string, values: ArrayLike<number>, expected: number): void {
  if (values.length !== expected) {
    throw new OnnxExportError(
      `${name} has ${values.length} values, the model config needs ${expected}.`,
      'The adapter or the weights belong to a different model; load the base model it was trained on.',
    );
  }
}

function encodeLinear(
  format: OnnxWeightFormat,
  w: Float32Array,
  out: number,
  inp: number,
  bias: Float32Array | null,
): LinearWeights {
  switch (format) {
    case 'f32':
      return { format, transposed: bytesOf(transpose(w, out, inp)), bias };
    case 'f16':
      return { format, transposed: toF16Bytes(transpose(w, out, inp)), bias };
    case 'int8':
      return { format, ...toBlockInt8(w, out, inp), bias };
    case 'int4':
      return { format, ...toNBits4(w, out, inp), bias };
  }
}

/** Merges, converts and lays out every weight of the detector in `format`. */
export function detectorWeights(
  source: DetectorSource,
  adapter: DetectorAdapter | null,
  format: OnnxWeightFormat,
  onProgress?: (done: number, total: number) => void,
  answers?: NtpAnswers,
): DetectorWeights {
  const d = describeDecoder(source.config);
  const D = d.width;
  const read = weightReader(source, adapter);
  const scaling = adapter ? adapter.config.alpha / adapter.config.r : 0;
  const vector = (name: string, n: number) => {
    const v = read.get(name);
    checkLength(name, v, n);
    return f32Copy(v);
  };
  const norm = (n: NormDesc): NormWeights => ({
    weight: vector(n.weight, D),
    bias: n.bias === null ? null : vector(n.bias, D),
  });
  /** A linear's weight [out, in] with its LoRA update merged, and its bias. */
  const mergedLinear = (l: LinearDesc) => {
    const m = l.module;
    const { out, in: inp } = l;
    const base = read.get(`${m}.weight`);
    checkLength(`${m}.weight`, base, out * inp);
    const A = read.lora(`${m}.lora_A.weight`);
    const B = read.lora(`${m}.lora_B.weight`);
    if (!A !== !B) {
      throw new OnnxExportError(
        `The adapter has only one of ${m}.lora_A/lora_B.`,
        'Export the adapter again.',
      );
    }
    let merged: Float32Array;
    if (A && B) {
      const r = adapter!.config.r;
      checkLength(`${m}.lora_A.weight`, A, r * inp);
      checkLength(`${m}.lora_B.weight`, B, out * r);
      merged = mergeLora(base, out, inp, A, B, r, scaling);
    } else merged = f32Copy(base);
    return { weight: merged, bias: l.bias ? vector(`${m}.bias`, out) : null };
  };
  const linear = (l: LinearDesc): LinearWeights => {
    const { weight, bias } = mergedLinear(l);
    return encodeLinear(format, weight, l.out, l.in, bias);
  };
  /**
   * The q/k/v projections as one linear: c_attn itself, or q_proj, k_proj and v_proj (each merged
   * with its own LoRA) stacked row-wise [q | k | v] with their biases (zeros for a projection
   * without one, when another has one). q8_0/q4_0 blocks run along `in` within a row, so the stacked
   * rows quantize exactly as each projection alone.
   */
  const qkv = (a: AttentionDesc): LinearWeights => {
    if (a.projections.length === 1) return linear(a.projections[0]);
    const parts = a.projections.map(mergedLinear);
    const inp = a.projections[0].in;
    const out = a.projections.reduce((sum, l) => sum + l.out, 0);
    const weight = new Float32Array(out * inp);
    const anyBias = parts.some((part) => part.bias);
    const bias = anyBias ? new Float32Array(out) : null;
    let row = 0;
    parts.forEach((part, i) => {
      weight.set(part.weight, row * inp);
      if (bias && part.bias) bias.set(part.bias, row);
      row += a.projections[i].out;
    });
    return encodeLinear(format, weight, out, inp, bias);
  };
  const mlp = (m: MlpDesc): MlpWeights =>
    m.kind === 'gelu'
      ? { kind: 'gelu', up: linear(m.up), down: linear(m.down) }
      : { kind: 'swiglu', gate: linear(m.gate), up: linear(m.up), down: linear(m.down) };
  const embedding = (name: string, rows: number) => {
    const v = read.get(name);
    checkLength(name, v, rows * D);
    return format === 'f32' ? bytesOf(f32Copy(v)) : toF16Bytes(v);
  };
  /** The token embedding with its adapter merged: wte[v] + s·B·A[:, v] (as wteᵀ [D, V] + s·B·A). */
  const tokenEmbedding = () => {
    const name = d.tokenEmbedding;
    const { a: nameA, b: nameB } = d.embeddingLora;
    const A = read.lora(nameA);
    const B = read.lora(nameB);
    if (!A !== !B) {
      throw new OnnxExportError(`The adapter has only one of ${nameA}/_B.`, 'Export the adapter again.');
    }
    if (!A || !B) return embedding(name, d.vocab);
    const V = d.vocab;
    const r = adapter!.config.r;
    const v = read.get(name);
    checkLength(name, v, V * D);
    checkLength(nameA, A, r * V);
    checkLength(nameB, B, D * r);
    const merged = transpose(mergeLora(transpose(f32Copy(v), V, D), D, V, A, B, r, scaling), D, V);
    return format === 'f32' ? bytesOf(merged) : toF16Bytes(merged);
  };

  /** The LM head's rows of " NO" and " YES" [2, D] (the tied head reads the unadapted table). */
  const answerRows = ({ yes, no }: NtpAnswers): Float32Array => {
    const head = read.get(d.lmHead);
    checkLength(d.lmHead, head, d.vocab * D);
    const rows = new Float32Array(2 * D);
    for (const [row, id] of [no, yes].entries()) {
      if (!Number.isInteger(id) || id < 0 || id >= d.vocab) {
        throw new OnnxExportError(
          `The answer token ${id} is outside the vocabulary (${d.vocab}).`,
          'Export with the tokenizer of the model the adapter was trained on.',
        );
      }
      for (let i = 0; i < D; i++) rows[row * D + i] = head[id * D + i];
    }
    return rows;
  };
  const blocks: BlockWeights[] = [];
  d.blocks.forEach((block, l) => {
    blocks.push({
      norm1: norm(block.norm1),
      qkv: qkv(block.attention),
      output: linear(block.attention.output),
      norm2: norm(block.norm2),
      mlp: mlp(block.mlp),
    });
    onProgress?.(l + 1, d.blocks.length);
  });
  const weights: DetectorWeights = {
    format,
    wte: tokenEmbedding(),
    wpe: d.positionEmbedding ? embedding(d.positionEmbedding.weight, d.maxPositions) : null,
    blocks,
    finalNorm: norm(d.finalNorm),
    scoreT: transpose(answers ? answerRows(answers) : vector(d.score, 2 * D), 2, D),
  };
  const unused = read.unused();
  if (unused.length > 0) {
    throw new OnnxExportError(
      `The adapter has tensors this model does not use: ${unused.slice(0, 4).join(', ')}${unused.length > 4 ? ` and ${unused.length - 4} more` : ''}.`,
      'The adapter was trained on a different base model (or with other LoRA targets than the model has).',
    );
  }
  return weights;
}

const align = (n: number, to: number) => Math.ceil(n / to) * to;

/** Initializers as TensorProtos: inline, or (above the limit) in one external-data file. */
function placeInitializers(
  initializers: Initializer[],
  dataFile: string,
  maxInlineBytes: number,
): { tensors: OnnxTypes.ITensorProto[]; external: OnnxExportFile | null } {
  const total = initializers.reduce((sum, t) => sum + t.bytes.byteLength, 0);
  const toExternal = total > maxInlineBytes;
  const chunks: Uint8Array[] = [];
  let cursor = 0;
  const tensors = initializers.map((t): OnnxTypes.ITensorProto => {
    if (!toExternal || t.bytes.byteLength < EXTERNAL_MIN_BYTES) {
      return { name: t.name, dataType: t.dataType, dims: t.dims, rawData: t.bytes };
    }
    const offset = align(cursor, EXTERNAL_ALIGNMENT);
    if (offset > cursor) chunks.push(new Uint8Array(offset - cursor));
    chunks.push(t.bytes);
    cursor = offset + t.bytes.byteLength;
    return {
      name: t.name,
      dataType: t.dataType,
      dims: t.dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: dataFile },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(t.bytes.byteLength) },
      ],
    };
  });
  return { tensors, external: toExternal ? { name: dataFile, chunks, size: cursor } : null };
}

function readme(m: DetectorMetadata): string {
  const threshold =
    m.threshold === null ? 'not recorded (pick one on your own validation data)' : m.threshold.toFixed(6);
  const family = 'model_type' in m.model ? FAMILY_NAMES[m.model.model_type] : FAMILY_NAMES.gpt_bigcode;
  return `# VulnLab vulnerability detector (ONNX)

${family} (${m.baseModel}) finetuned with LoRA to classify Java functions as vulnerable${m.objective === 'ntp' ? ' (next-token objective: it answers " YES" or " NO" after the paper\'s prompt)' : ''}; the adapter is
merged into the base weights. Weights: ${m.weightFormat}. Opsets: ai.onnx ${m.opsets['ai.onnx']}, com.microsoft ${m.opsets[MS_DOMAIN]}
(ONNX Runtime 1.20 or later).

Files: \`${m.files.model}\`${m.files.externalData ? ` + \`${m.files.externalData}\` (external weights, keep next to the model)` : ''}, \`${m.files.tokenizer}\`, \`detector.json\` (this description, machine-readable).

## Inputs
- \`input_ids\`: ${m.inputs.input_ids}
- \`attention_mask\`: ${m.inputs.attention_mask}

One Java method per row. Tokenize with \`tokenizer.json\` (Hugging Face tokenizers), no special tokens;
${m.tokenizer.normalize.stripComments ? 'strip comments; ' : ''}${m.tokenizer.normalize.collapseWhitespace ? 'collapse whitespace outside literals to one space; ' : ''}keep at most ${m.tokenizer.maxTokens} tokens (the ${m.tokenizer.truncation === 'tail' ? 'last' : 'first'} ones).${
    m.tokenizer.frame && m.tokenizer.frame.before.length + m.tokenizer.frame.after.length > 0
      ? `
Then put the ids ${JSON.stringify(m.tokenizer.frame.before)} before the code's and ${JSON.stringify(m.tokenizer.frame.after)} after
(${m.objective === 'ntp' ? 'the tokenizer\'s special prefix and the paper\'s prompt, "Question: " … "\\n\\nAnswer:"' : 'the special tokens the tokenizer puts before a text'}), as the detector was trained.`
      : ''
  }
Pad on the right with any id (e.g. ${m.tokenizer.padId}) and mask 0.

## Outputs
- \`logits\`: ${m.outputs.logits}
- \`probability\`: ${m.outputs.probability}

Threshold chosen on validation: ${threshold}. Report a method when probability ≥ threshold.
${
  m.weightFormat === 'int8'
    ? `
ONNX Runtime's CPU provider fuses the int8 DequantizeLinear + MatMul into MatMulNBits and by default also
quantizes the activations to int8 (faster, less exact); the session option
\`session.qdq_matmulnbits_accuracy_level = 0\` keeps the exact dequantized f32 math.
`
    : ''
}
## Example (Python)
\`\`\`python
import numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
tok = Tokenizer.from_file("${m.files.tokenizer}")
ids = ${m.tokenizer.frame?.before.length ? `${JSON.stringify(m.tokenizer.frame.before)} + ` : ''}tok.encode(java_method, add_special_tokens=False).ids[:${m.tokenizer.maxTokens}]${m.tokenizer.frame?.after.length ? ` + ${JSON.stringify(m.tokenizer.frame.after)}` : ''}
session = ort.InferenceSession("${m.files.model}")
p = session.run(["probability"], {"input_ids": np.array([ids], np.int64),
                                  "attention_mask": np.ones((1, len(ids)), np.int64)})[0][0]
\`\`\`
`;
}

/** Builds the ONNX detector and the files that travel with it. */
export function exportOnnxDetector(
  source: DetectorSource,
  adapter: DetectorAdapter | null,
  options: OnnxExportOptions,
): OnnxExport {
  const d = describeDecoder(source.config);
  const modelFile = options.modelFile ?? 'model.onnx';
  const dataFile = `${modelFile}.data`;
  const tokenizer = options.tokenizerFiles.find((f) => f.name === 'tokenizer.json');
  if (!tokenizer) {
    throw new OnnxExportError(
      'The model has no tokenizer.json to ship with the detector.',
      'Load a model with tokenizer.json.',
    );
  }
  const { answers } = options;
  if (answers && !options.tokenization.frame?.after.length) {
    throw new OnnxExportError(
      'A next-token detector needs both its answer tokens and its prompt.',
      'Export a CAUSAL_LM adapter with the tokenizer of its model (the CLI and the lab do).',
    );
  }
  const weights = detectorWeights(source, adapter, options.format, options.onProgress, answers);
  const { graph, initializers, operators } = buildDetectorGraph(d, weights);
  const { tensors, external } = placeInitializers(
    initializers,
    dataFile,
    options.maxInlineBytes ?? DEFAULT_MAX_INLINE_BYTES,
  );
  const metadata: DetectorMetadata = {
    format: DETECTOR_FORMAT,
    version: 1,
    baseModel: source.name,
    weightFormat: options.format,
    threshold: options.threshold ?? null,
    inputs: {
      input_ids: 'int64 [batch, sequence]: token ids of one Java method per row, right-padded',
      attention_mask: 'int64 [batch, sequence]: 1 for real tokens, 0 for padding',
    },
    outputs: {
      logits: answers
        ? 'float32 [batch, 2]: the next-token logits of " NO" and " YES" at the last real token (the prompt\'s end)'
        : 'float32 [batch, 2]: class logits (not vulnerable, vulnerable) at the last real token',
      probability: 'float32 [batch]: softmax(logits)[:, 1], the probability that the method is vulnerable',
    },
    tokenizer: { ...options.tokenization, file: 'tokenizer.json' },
    objective: answers ? 'ntp' : 'cls',
    ...(answers && { answers }),
    model: detectorModelInfo(source.config),
    // A full finetune's adapter carries weights, not LoRA pairs: nothing was merged.
    lora:
      adapter && [...adapter.tensors.keys()].some((name) => name.endsWith('.lora_A.weight'))
        ? { r: adapter.config.r, alpha: adapter.config.alpha, targets: [...adapter.config.targets] }
        : null,
    opsets: { 'ai.onnx': ONNX_OPSET, [MS_DOMAIN]: MS_OPSET },
    operators,
    files: { model: modelFile, externalData: external ? dataFile : null, tokenizer: 'tokenizer.json' },
  };
  const model: OnnxTypes.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [
      { domain: '', version: ONNX_OPSET },
      { domain: MS_DOMAIN, version: MS_OPSET },
    ],
    producerName: 'VulnLab',
    producerVersion: '0.1.0',
    domain: 'org.vulnlab',
    modelVersion: 1,
    docString: `Vulnerability detector: ${source.name} + LoRA, ${options.format} weights (block ${BLOCK_SIZE} for int8/int4).`,
    graph: { ...graph, initializer: tensors },
    metadataProps: [{ key: DETECTOR_METADATA_KEY, value: JSON.stringify(metadata) }],
  };
  const encoded = onnx.ModelProto.encode(model).finish();
  const files: OnnxExportFile[] = [{ name: modelFile, chunks: [encoded], size: encoded.byteLength }];
  if (external) files.push(external);
  for (const f of options.tokenizerFiles)
    files.push({ name: f.name, chunks: [f.bytes], size: f.bytes.byteLength });
  files.push(textFile('detector.json', JSON.stringify(metadata, null, 2) + '\n'));
  files.push(textFile('README.md', readme(metadata)));
  return { files, metadata };
}

/** tokenizer.json (required) and tokenizer_config.json (when present) of a model, to ship with the export. */
export async function readTokenizerFiles(files: ModelFiles): Promise<{ name: string; bytes: Uint8Array }[]> {
  const out: { name: string; bytes: Uint8Array }[] = [];
  for (const name of ['tokenizer.json', 'tokenizer_config.json']) {
    let source;
    try {
      source = await files.open(name);
    } catch (error) {
      if (name === 'tokenizer.json') throw error;
      continue; // tokenizer_config.json is optional
    }
    try {
      out.push({ name, bytes: await source.read(0, source.size) });
    } finally {
      await source.close?.();
    }
  }
  return out;
}
