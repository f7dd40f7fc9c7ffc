/**
 * The detector as an ONNX graph (ai.onnx opset 21 + com.microsoft 1), built from the model's decoder
 * description (src/engine/model/decoder.ts: GPT-BigCode, Llama, Qwen2, StarCoder2), the same math as
 * the float64 reference (src/engine/reference/model.ts) for one function per row:
 *
 *   input_ids, attention_mask: int64 [batch, sequence] (right padding, mask 1 = real token)
 *   position_ids = 0..S−1 (computed in the graph: every row is one function, so positions restart per
 *     function exactly as in the engine's packed batches)
 *   x = wte[input_ids] (+ wpe[position_ids] with learned positions)
 *   per block: x += o(attn(norm_1(x))); x += mlp(norm_2(x))
 *     norm: LayerNormalization (weight, optional bias) or RMSNorm as primitive ops
 *       weight · x / Sqrt(ReduceMean(Pow(x, 2)) + eps) (see norm() below for why not
 *       SimplifiedLayerNormalization)
 *     attention: q, k, v from one fused projection (GPT-BigCode's c_attn; the Llama family's q/k/v_proj
 *       are merged into one qkv_proj weight at export, rows [q | k | v], biases likewise), then heads;
 *       rotary positions on q and k (rotate-half, cos/sin of position_ids · inv_freq computed in the
 *       graph in f32 as Hugging Face does; inv_freq = 1/(scaling·θ^(2i/d)) is a constant);
 *       grouped-query heads as a grouped MatMul (q viewed [batch, kv_heads, group, S, d] against
 *       k/v [batch, kv_heads, 1, S, d]: query head h reads kv head ⌊h/group⌋ as HF's repeat_kv, without
 *       copying K/V); softmax(q·kᵀ/√head_dim + bias)·v,
 *       bias = 0 where key ≤ query, mask[key] = 1 and (with a sliding window W) query − key < W,
 *       −1e9 elsewhere (padding never reaches real tokens)
 *     MLP: down(gelu(up(x))) (com.microsoft Gelu / FastGelu) or down(silu(gate(x))·up(x)) with
 *       silu(g) = Sigmoid(g)·g
 *   last = sum(mask) − 1 (one-hot pick); h = norm_f(x[last]); logits = h·scoreᵀ [batch, 2]; probability = softmax(logits)[:, 1]
 *
 * Operators: Gather, Add, Sub, Mul, ReduceSum, Shape, Squeeze, Unsqueeze, Range, LessOrEqual, Equal,
 * Cast, Reshape, Transpose, Split, MatMul, Softmax, LayerNormalization (opset 17 schema),
 * DequantizeLinear (opset 21, blocked; int8 only); com.microsoft Gelu (erf) or FastGelu (tanh) and
 * MatMulNBits (int4 only); with RMSNorm Pow, ReduceMean, Sqrt, Div; with rotary positions Concat, Cos, Sin,
 * Neg; with a sliding window Less; with SwiGLU Sigmoid. GPT-BigCode's graph is the one this file built
 * before the other families joined, node for node.
 */
import type { AttentionDesc, DecoderDesc, MlpDesc, NormDesc } from '../../engine/model/decoder.ts';
import { DataType, attribute, valueInfo, type AttributeValue, type OnnxTypes } from './proto.ts';
import type { OnnxWeightFormat } from './weights.ts';

export const ONNX_OPSET = 21;
export const MS_DOMAIN = 'com.microsoft';
export const MS_OPSET = 1;
/** IR version 10 is the one that goes with opset 21. */
export const IR_VERSION = 10;
export const BLOCK_SIZE = 32;

export const INPUT_NAMES = ['input_ids', 'attention_mask'] as const;
export const OUTPUT_NAMES = ['logits', 'probability'] as const;

/** An initializer before it is placed inline or in the external-data file. */
export interface Initializer {
  name: string;
  dataType: number;
  dims: number[];
  bytes: Uint8Array;
}

/** Collects nodes and initializers; every value gets a readable unique name. */
export class GraphBuilder {
  readonly nodes: OnnxTypes.INodeProto[] = [];
  readonly initializers: Initializer[] = [];
  private readonly used = new Set<string>();

  private unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  tensor(name: string, dataType: number, dims: number[], bytes: Uint8Array): string {
    const unique = this.unique(name);
    this.initializers.push({ name: unique, dataType, dims, bytes });
    return unique;
  }

  int64(name: string, values: number[], scalar = false): string {
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    return this.tensor(name, DataType.INT64, scalar ? [] : [values.length], new Uint8Array(data.buffer));
  }

  float(name: string, value: number): string {
    return this.tensor(name, DataType.FLOAT, [], new Uint8Array(Float32Array.of(value).buffer));
  }

  /** Adds a node; returns its output names (`outputs` of them, named after `name`). */
  op(
    opType: string,
    inputs: string[],
    name: string,
    attrs: Record<string, AttributeValue> = {},
    { outputs = 1, domain = '' }: { outputs?: number; domain?: string } = {},
  ): string[] {
    const outs = Array.from({ length: outputs }, (_, i) =>
      this.unique(outputs === 1 ? name : `${name}_${i}`),
    );
    this.nodes.push({
      opType,
      domain,
      name: this.unique(`${name}/${opType}`),
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([key, value]) => attribute(key, value)),
    });
    return outs;
  }

  /** The one output of a node. */
  op1(
    opType: string,
    inputs: string[],
    name: string,
    attrs?: Record<string, AttributeValue>,
    options?: { domain?: string },
  ): string {
    return this.op(opType, inputs, name, attrs, options)[0];
  }
}

/** A linear in the export format (see weights.ts for the layouts); `bias` null: the module has none. */
export type LinearWeights =
  | { format: 'f32' | 'f16'; transposed: Uint8Array; bias: Float32Array | null }
  | { format: 'int8'; values: Int8Array; scales: Float32Array; bias: Float32Array | null }
  | {
      format: 'int4';
      packed: Uint8Array;
      scales: Float32Array;
      blocks: number;
      bias: Float32Array | null;
    };

export interface NormWeights {
  weight: Float32Array;
  /** LayerNorm's bias; null for RMSNorm (and a LayerNorm without one). */
  bias: Float32Array | null;
}

export type MlpWeights =
  | { kind: 'gelu'; up: LinearWeights; down: LinearWeights }
  | { kind: 'swiglu'; gate: LinearWeights; up: LinearWeights; down: LinearWeights };

export interface BlockWeights {
  norm1: NormWeights;
  /**
   * The attention's projections as one linear writing the q/k/v row (`qkvWidth` wide): GPT-BigCode's
   * c_attn, or the Llama family's q_proj, k_proj and v_proj merged row-wise ([q | k | v], see qkvModule).
   */
  qkv: LinearWeights;
  output: LinearWeights;
  norm2: NormWeights;
  mlp: MlpWeights;
}

export interface DetectorWeights {
  format: OnnxWeightFormat;
  /** [vocab, D] and (learned positions only) [maxPositions, D]: f32 bytes for 'f32', f16 bytes otherwise. */
  wte: Uint8Array;
  wpe: Uint8Array | null;
  blocks: BlockWeights[];
  finalNorm: NormWeights;
  /** score.weight transposed: [D, 2] f32. */
  scoreT: Float32Array;
}

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** `a.b.weight` → `a.b`. */
const moduleOf = (weight: string) => weight.replace(/\.weight$/, '');
/** `a.b.c` → `a.b`. */
const parentOf = (module: string) => module.slice(0, module.lastIndexOf('.'));

/**
 * The graph's name for a block's q/k/v linear: the fused module itself (c_attn), or for separate
 * projections `<block>.self_attn.qkv_proj`, the three merged row-wise.
 */
export function qkvModule(attention: AttentionDesc): string {
  const [first] = attention.projections;
  return attention.projections.length === 1 ? first.module : `${parentOf(first.module)}.qkv_proj`;
}

function linear(
  g: GraphBuilder,
  x: string,
  w: LinearWeights,
  prefix: string,
  inp: number,
  out: number,
): string {
  let y: string;
  switch (w.format) {
    case 'f32':
    case 'f16': {
      const type = w.format === 'f32' ? DataType.FLOAT : DataType.FLOAT16;
      let weight = g.tensor(`${prefix}.weight_T`, type, [inp, out], w.transposed);
      // f16 weights are widened once (ORT folds the Cast at load); the arithmetic stays f32.
      if (w.format === 'f16')
        weight = g.op1('Cast', [weight], `${prefix}.weight_T_f32`, { to: DataType.FLOAT });
      y = g.op1('MatMul', [x, weight], `${prefix}.matmul`);
      break;
    }
    case 'int8': {
      const q = g.tensor(
        `${prefix}.weight_T_int8`,
        DataType.INT8,
        [inp, out],
        new Uint8Array(w.values.buffer),
      );
      const s = g.tensor(
        `${prefix}.weight_T_scales`,
        DataType.FLOAT,
        [Math.ceil(inp / BLOCK_SIZE), out],
        f32(w.scales),
      );
      const weight = g.op1('DequantizeLinear', [q, s], `${prefix}.weight_T`, {
        axis: 0,
        block_size: BLOCK_SIZE,
      });
      y = g.op1('MatMul', [x, weight], `${prefix}.matmul`);
      break;
    }
    case 'int4': {
      const q = g.tensor(`${prefix}.weight_q4`, DataType.UINT8, [out, w.blocks, BLOCK_SIZE / 2], w.packed);
      const s = g.tensor(`${prefix}.weight_scales`, DataType.FLOAT, [out, w.blocks], f32(w.scales));
      y = g.op1(
        'MatMulNBits',
        [x, q, s],
        `${prefix}.matmul`,
        { K: inp, N: out, bits: 4, block_size: BLOCK_SIZE, accuracy_level: 0 },
        { domain: MS_DOMAIN },
      );
      break;
    }
  }
  if (!w.bias) return y;
  const bias = g.tensor(`${prefix}.bias`, DataType.FLOAT, [out], f32(w.bias));
  return g.op1('Add', [y, bias], `${prefix}.out`);
}

/**
 * LayerNorm (LayerNormalization, bias optional) or RMSNorm over the last axis. RMSNorm is written as
 * primitive ops, x / Sqrt(ReduceMean(Pow(x, 2)) + eps) · weight, in the order Hugging Face's
 * LlamaRMSNorm computes it. Measured with onnxruntime-node 1.30 against writing ONNX Runtime's
 * SimplifiedLayerNormalization contrib op instead: its optimizer (SimplifiedLayerNormFusion, on at the
 * default level) fuses the primitive chain into that very kernel at load, so logits are bit-identical
 * and time the same (Llama 512 wide, 4 layers, 4 × 256 tokens, 2 threads: 841 vs 849 ms median);
 * but the contrib op sits in the ai.onnx domain, where ONNX has no such schema, so onnx.checker (1.23)
 * rejects that model ("No Op registered for SimplifiedLayerNormalization with domain_version of 21")
 * while it accepts this one. tests/onnx/families.test.ts ("RMSNorm") keeps the fusion and the equal
 * logits checked.
 */
function norm(g: GraphBuilder, x: string, w: NormWeights, desc: NormDesc, prefix: string): string {
  const scale = g.tensor(`${prefix}.weight`, DataType.FLOAT, [w.weight.length], f32(w.weight));
  if (desc.kind === 'layernorm') {
    const inputs = [x, scale];
    if (w.bias) inputs.push(g.tensor(`${prefix}.bias`, DataType.FLOAT, [w.bias.length], f32(w.bias)));
    return g.op1('LayerNormalization', inputs, `${prefix}.out`, { axis: -1, epsilon: { float: desc.eps } });
  }
  const square = g.op1('Pow', [x, g.float(`${prefix}.two`, 2)], `${prefix}.square`);
  const meanSquare = g.op1('ReduceMean', [square, g.int64(`${prefix}.axes`, [-1])], `${prefix}.mean_square`, {
    keepdims: 1,
  });
  const rms = g.op1(
    'Sqrt',
    [g.op1('Add', [meanSquare, g.float(`${prefix}.eps`, desc.eps)], `${prefix}.variance`)],
    `${prefix}.rms`,
  );
  const normalized = g.op1('Div', [x, rms], `${prefix}.normalized`);
  return g.op1('Mul', [scale, normalized], `${prefix}.out`);
}

/** cos and sign-folded sin tables [S, head_dim] of one rotary configuration. */
interface RotaryTables {
  cos: string;
  /** [−sin | sin]: x·cos + [x₂ | x₁]·sinSigned is HF's x·cos + rotate_half(x)·sin. */
  sinSigned: string;
}

/**
 * Rotary angles position · inv_freq in f32 (as Hugging Face's LlamaRotaryEmbedding and the engine's
 * kernel), inv_freq = 1/(scaling·θ^(2i/d)) rounded once from float64 (linear scaling folded in, as
 * `inv_freq /= factor`); cos and sin in the graph, so any sequence length works without tables.
 */
function rotaryTables(
  g: GraphBuilder,
  positions: string,
  rope: { theta: number; scaling: number },
  headDim: number,
  name: string,
): RotaryTables {
  const half = headDim / 2;
  const invFreq = Float32Array.from(
    { length: half },
    (_, i) => 1 / (rope.scaling * Math.pow(rope.theta, (2 * i) / headDim)),
  );
  const freq = g.tensor(`${name}.inv_freq`, DataType.FLOAT, [half], f32(invFreq));
  const column = g.op1('Unsqueeze', [positions, g.int64(`${name}.axes1`, [1])], `${name}.positions`);
  const angles = g.op1('Mul', [column, freq], `${name}.angles`);
  const cosHalf = g.op1('Cos', [angles], `${name}.cos_half`);
  const sinHalf = g.op1('Sin', [angles], `${name}.sin_half`);
  return {
    cos: g.op1('Concat', [cosHalf, cosHalf], `${name}.cos`, { axis: -1 }),
    sinSigned: g.op1(
      'Concat',
      [g.op1('Neg', [sinHalf], `${name}.neg_sin_half`), sinHalf],
      `${name}.sin_signed`,
      { axis: -1 },
    ),
  };
}

/** Rotate-half RoPE on heads [..., S, head_dim]. */
function applyRope(g: GraphBuilder, x: string, t: RotaryTables, headDim: number, name: string): string {
  const half = headDim / 2;
  const [x1, x2] = g.op(
    'Split',
    [x, g.int64(`${name}.halves`, [half, half])],
    `${name}.half`,
    { axis: -1 },
    { outputs: 2 },
  );
  const swapped = g.op1('Concat', [x2, x1], `${name}.swapped`, { axis: -1 });
  return g.op1(
    'Add',
    [g.op1('Mul', [x, t.cos], `${name}.x_cos`), g.op1('Mul', [swapped, t.sinSigned], `${name}.swapped_sin`)],
    name,
  );
}

export interface DetectorGraph {
  graph: OnnxTypes.IGraphProto;
  initializers: Initializer[];
  operators: string[];
}

/** Builds the graph; initializers are returned separately (the exporter places their bytes). */
export function buildDetectorGraph(d: DecoderDesc, w: DetectorWeights): DetectorGraph {
  const g = new GraphBuilder();
  const D = d.width;
  const embType = w.format === 'f32' ? DataType.FLOAT : DataType.FLOAT16;
  const zero = g.int64('const.zero', [0], true);
  const one = g.int64('const.one', [1], true);

  // Sequence steps 0..S−1: the positions of right-padded rows, and the causal mask's axes. Index
  // arithmetic stays in Shape/Range (int64) and float: onnxruntime-web's WebGPU provider mishandles
  // int64 arithmetic (CumSum/Sub/Max results fed to Gather), so none is used.
  const seqLen = g.op1(
    'Squeeze',
    [g.op1('Shape', ['input_ids'], 'shape.seq', { start: 1, end: 2 }), g.int64('const.axes0', [0])],
    'seq_len',
  );
  const steps = g.op1('Range', [zero, seqLen, one], 'position_ids');
  let stepsF: string | null = null;
  const positionsF = () => (stepsF ??= g.op1('Cast', [steps], 'position_ids_f32', { to: DataType.FLOAT }));

  // f16 tables are widened before the lookup: ORT folds Cast(initializer) at load, so no f16 value
  // reaches a kernel (WebGPU adapters without shader-f16, e.g. SwiftShader, cannot run f16 shaders).
  const table = (name: string, rows: number, bytes: Uint8Array) => {
    const t = g.tensor(name, embType, [rows, D], bytes);
    return embType === DataType.FLOAT16 ? g.op1('Cast', [t], `${name}_f32`, { to: DataType.FLOAT }) : t;
  };
  const wte = table(d.tokenEmbedding, d.vocab, w.wte);
  let x: string;
  if (d.positionEmbedding) {
    if (!w.wpe) throw new RangeError('buildDetectorGraph: learned positions need the wpe table');
    const wpe = table(d.positionEmbedding.weight, d.maxPositions, w.wpe);
    const tok = g.op1('Gather', [wte, 'input_ids'], 'embed.tokens', { axis: 0 });
    const pos = g.op1('Gather', [wpe, steps], 'embed.positions', { axis: 0 });
    x = g.op1('Add', [tok, pos], 'embed.out');
  } else x = g.op1('Gather', [wte, 'input_ids'], 'embed.tokens', { axis: 0 });

  // Attention bias [batch, 1, S, S]: 0 where the key is allowed (causal and not padding), −1e9 elsewhere.
  const queries = g.op1('Unsqueeze', [steps, g.int64('const.axes1', [1])], 'seq.queries');
  const keys = g.op1('Unsqueeze', [steps, g.int64('const.axes0b', [0])], 'seq.keys');
  const causal = g.op1('Cast', [g.op1('LessOrEqual', [keys, queries], 'mask.causal_bool')], 'mask.causal', {
    to: DataType.FLOAT,
  });
  const maskF = g.op1('Cast', ['attention_mask'], 'mask.keys_f32', { to: DataType.FLOAT });
  const keyMask = g.op1('Unsqueeze', [maskF, g.int64('const.axes12', [1, 2])], 'mask.keys');
  const allowed = g.op1('Mul', [causal, keyMask], 'mask.allowed');
  let onef: string | null = null;
  let big: string | null = null;
  const toBias = (allowedKeys: string, name: string) => {
    const blocked = g.op1('Sub', [allowedKeys, (onef ??= g.float('const.onef', 1))], `${name}.blocked`);
    return g.op1('Mul', [blocked, (big ??= g.float('const.big', 1e9))], `${name}.bias`);
  };
  // Bias per sliding window (null: the whole causal row), and its rank-5 view for grouped heads.
  const biases = new Map<number | null, string>([[null, toBias(allowed, 'mask')]]);
  const biasFor = (window: number | null): string => {
    let bias = biases.get(window);
    if (bias === undefined) {
      // Keys with query − key < W (the query itself included), in float: no int64 arithmetic.
      const name = `mask.window${window}`;
      const queriesF = g.op1('Unsqueeze', [positionsF(), g.int64(`${name}.axes1`, [1])], `${name}.queries`);
      const keysF = g.op1('Unsqueeze', [positionsF(), g.int64(`${name}.axes0`, [0])], `${name}.keys`);
      const distance = g.op1('Sub', [queriesF, keysF], `${name}.distance`);
      const inWindow = g.op1(
        'Cast',
        [g.op1('Less', [distance, g.float(`${name}.size`, window!)], `${name}.inside_bool`)],
        `${name}.inside`,
        { to: DataType.FLOAT },
      );
      bias = toBias(g.op1('Mul', [allowed, inWindow], `${name}.allowed`), name);
      biases.set(window, bias);
    }
    return bias;
  };
  const groupedBiases = new Map<number | null, string>();
  const groupedBiasFor = (window: number | null): string => {
    let bias = groupedBiases.get(window);
    if (bias === undefined) {
      const name = window === null ? 'mask.grouped' : `mask.window${window}.grouped`;
      bias = g.op1('Unsqueeze', [biasFor(window), g.int64(`${name}.axes`, [1])], `${name}.bias`);
      groupedBiases.set(window, bias);
    }
    return bias;
  };
  const tables = new Map<string, RotaryTables>();
  const rotary = (a: AttentionDesc): RotaryTables => {
    const key = `${a.rope!.theta}/${a.rope!.scaling}/${a.headDim}`;
    let t = tables.get(key);
    if (!t) {
      t = rotaryTables(g, positionsF(), a.rope!, a.headDim, `rope${tables.size}`);
      tables.set(key, t);
    }
    return t;
  };

  // 1/√head_dim per head width (one in every supported model).
  const scales = new Map<number, string>();
  for (const { attention: a } of d.blocks) {
    if (!scales.has(a.headDim)) {
      const name = scales.size === 0 ? 'const.attn_scale' : `const.attn_scale_${a.headDim}`;
      scales.set(a.headDim, g.float(name, 1 / Math.sqrt(a.headDim)));
    }
  }
  d.blocks.forEach((block, l) => {
    const b = w.blocks[l];
    const a = block.attention;
    const p = parentOf(a.output.module);
    const h = norm(g, x, b.norm1, block.norm1, moduleOf(block.norm1.weight));
    const merged = attention(g, h, a, b.qkv, {
      prefix: p,
      scale: scales.get(a.headDim)!,
      bias: () => biasFor(a.slidingWindow),
      groupedBias: () => groupedBiasFor(a.slidingWindow),
      rope: a.rope ? () => rotary(a) : null,
    });
    const o = a.output;
    x = g.op1('Add', [x, linear(g, merged, b.output, o.module, o.in, o.out)], `${p}.residual`);

    const h2 = norm(g, x, b.norm2, block.norm2, moduleOf(block.norm2.weight));
    x = mlp(g, x, h2, block.mlp, b.mlp);
  });

  // Each row's last real token (index sum(mask) − 1) picked by a one-hot row: exact, and float only.
  const lengths = g.op1('ReduceSum', [maskF, g.int64('const.axes1c', [1])], 'lengths', { keepdims: 1 });
  const lastIndex = g.op1('Sub', [lengths, g.float('const.onef_b', 1)], 'last_index');
  const oneHot = g.op1('Cast', [g.op1('Equal', [positionsF(), lastIndex], 'last.is_last')], 'last.one_hot', {
    to: DataType.FLOAT,
  });
  const pick = g.op1('Unsqueeze', [oneHot, g.int64('const.axes1d', [1])], 'last.pick');
  const lastHidden = g.op1(
    'Squeeze',
    [g.op1('MatMul', [pick, x], 'hidden.last_row'), g.int64('const.axes1e', [1])],
    'hidden.last',
  );
  const final = norm(g, lastHidden, w.finalNorm, d.finalNorm, moduleOf(d.finalNorm.weight));
  const scoreT = g.tensor(`${d.score}_T`, DataType.FLOAT, [D, 2], f32(w.scoreT));
  g.op('MatMul', [final, scoreT], 'logits');
  const softmax = g.op1('Softmax', ['logits'], 'class_probabilities', { axis: -1 });
  g.op('Gather', [softmax, g.int64('const.vulnerable', [1], true)], 'probability', { axis: 1 });

  const operators = [
    ...new Set(g.nodes.map((n) => (n.domain ? `${n.domain}.${n.opType}` : n.opType!))),
  ].sort();
  return {
    graph: {
      name: `vulnlab_${d.family}_detector`,
      node: g.nodes,
      input: [
        valueInfo('input_ids', DataType.INT64, ['batch', 'sequence']),
        valueInfo('attention_mask', DataType.INT64, ['batch', 'sequence']),
      ],
      output: [
        valueInfo('logits', DataType.FLOAT, ['batch', 2]),
        valueInfo('probability', DataType.FLOAT, ['batch']),
      ],
    },
    initializers: g.initializers,
    operators,
  };
}

interface AttentionContext {
  /** Names of this attention's values (`transformer.h.0.attn`, `model.layers.0.self_attn`). */
  prefix: string;
  /** 1/√head_dim. */
  scale: string;
  /** The attention bias [batch, 1, S, S] of this block's window, and its [batch, 1, 1, S, S] view. */
  bias: () => string;
  groupedBias: () => string;
  rope: (() => RotaryTables) | null;
}

/** Attention of one block from the normed input: the heads' outputs merged to [batch, S, heads·d]. */
function attention(
  g: GraphBuilder,
  h: string,
  a: AttentionDesc,
  qkvWeights: LinearWeights,
  ctx: AttentionContext,
): string {
  const p = ctx.prefix;
  const H = a.nHead;
  const KV = a.kvHeads;
  const hd = a.headDim;
  const perm0213 = { perm: [0, 2, 1, 3] };
  const qkv = linear(g, h, qkvWeights, qkvModule(a), a.projections[0].in, (H + 2 * KV) * hd);
  const rope = (x: string, name: string) => (ctx.rope ? applyRope(g, x, ctx.rope(), hd, name) : x);
  // q [batch, H, S, d] (or [batch, KV, group, S, d]), kT [..., d, S], v [..., S, d]
  let q: string, kT: string, v: string;
  let grouped = false;
  if (a.layout === 'interleaved') {
    // Multi-head c_attn rows are interleaved per head: [q_h, k_h, v_h] for h = 0..H−1.
    const heads = g.op1('Reshape', [qkv, g.int64(`${p}.qkv_shape`, [0, 0, H, 3 * hd])], `${p}.qkv_heads`);
    const [q0, k0, v0] = g.op(
      'Split',
      [heads, g.int64(`${p}.split`, [hd, hd, hd])],
      `${p}.qkv`,
      { axis: -1 },
      { outputs: 3 },
    );
    q = rope(g.op1('Transpose', [q0], `${p}.q`, perm0213), `${p}.q_rope`);
    if (ctx.rope) {
      const k = applyRope(g, g.op1('Transpose', [k0], `${p}.k`, perm0213), ctx.rope(), hd, `${p}.k_rope`);
      kT = g.op1('Transpose', [k], `${p}.k_T`, { perm: [0, 1, 3, 2] });
    } else kT = g.op1('Transpose', [k0], `${p}.k_T`, { perm: [0, 2, 3, 1] });
    v = g.op1('Transpose', [v0], `${p}.v`, perm0213);
  } else {
    // Grouped rows [q: H·d | k: KV·d | v: KV·d].
    const [q0, k0, v0] = g.op(
      'Split',
      [qkv, g.int64(`${p}.split`, [H * hd, KV * hd, KV * hd])],
      `${p}.qkv`,
      { axis: -1 },
      { outputs: 3 },
    );
    if (KV === 1 || KV === H) {
      q = rope(
        g.op1(
          'Transpose',
          [g.op1('Reshape', [q0, g.int64(`${p}.q_shape`, [0, 0, H, hd])], `${p}.q_heads`)],
          `${p}.q`,
          perm0213,
        ),
        `${p}.q_rope`,
      );
      const heads = (x: string, name: 'k' | 'v') =>
        KV === 1
          ? // Multi-query: one k/v head, broadcast over the query heads by MatMul.
            g.op1(
              'Unsqueeze',
              [x, g.int64(`${p}.axes1${name === 'k' ? '' : 'b'}`, [1])],
              `${p}.${name === 'k' ? 'k_head' : 'v'}`,
            )
          : g.op1(
              'Transpose',
              [g.op1('Reshape', [x, g.int64(`${p}.${name}_shape`, [0, 0, KV, hd])], `${p}.${name}_heads`)],
              `${p}.${name}`,
              perm0213,
            );
      kT = g.op1('Transpose', [rope(heads(k0, 'k'), `${p}.k_rope`)], `${p}.k_T`, { perm: [0, 1, 3, 2] });
      v = heads(v0, 'v');
    } else {
      // Grouped-query: query head h = kv·group + j reads kv head kv (HF repeat_kv); q viewed
      // [batch, KV, group, S, d] against k/v [batch, KV, 1, S, d], broadcast by MatMul (no copies).
      grouped = true;
      const group = H / KV;
      q = rope(
        g.op1(
          'Transpose',
          [g.op1('Reshape', [q0, g.int64(`${p}.q_shape`, [0, 0, KV, group, hd])], `${p}.q_heads`)],
          `${p}.q`,
          { perm: [0, 2, 3, 1, 4] },
        ),
        `${p}.q_rope`,
      );
      const kvHeads = (x: string, name: 'k' | 'v') =>
        g.op1(
          'Unsqueeze',
          [
            g.op1(
              'Transpose',
              [g.op1('Reshape', [x, g.int64(`${p}.${name}_shape`, [0, 0, KV, hd])], `${p}.${name}_heads`)],
              `${p}.${name}_T`,
              perm0213,
            ),
            g.int64(`${p}.${name}_axes2`, [2]),
          ],
          `${p}.${name}`,
        );
      kT = g.op1('Transpose', [rope(kvHeads(k0, 'k'), `${p}.k_rope`)], `${p}.k_T`, {
        perm: [0, 1, 2, 4, 3],
      });
      v = kvHeads(v0, 'v');
    }
  }
  const scores = g.op1(
    'Add',
    [
      g.op1('Mul', [g.op1('MatMul', [q, kT], `${p}.qk`), ctx.scale], `${p}.scaled`),
      grouped ? ctx.groupedBias() : ctx.bias(),
    ],
    `${p}.scores`,
  );
  const probs = g.op1('Softmax', [scores], `${p}.probs`, { axis: -1 });
  const context = g.op1(
    'Transpose',
    [g.op1('MatMul', [probs, v], `${p}.context_heads`)],
    `${p}.context_T`,
    grouped ? { perm: [0, 3, 1, 2, 4] } : perm0213,
  );
  return g.op1('Reshape', [context, g.int64(`${p}.merge_shape`, [0, 0, H * hd])], `${p}.context`);
}

/** x + mlp(h). */
function mlp(g: GraphBuilder, x: string, h: string, desc: MlpDesc, w: MlpWeights): string {
  const p = parentOf(desc.down.module);
  let act: string;
  if (desc.kind === 'gelu' && w.kind === 'gelu') {
    const fc = linear(g, h, w.up, desc.up.module, desc.up.in, desc.up.out);
    act = g.op1(
      desc.activation === 'gelu' ? 'Gelu' : 'FastGelu',
      [fc],
      `${p}.act`,
      {},
      { domain: MS_DOMAIN },
    );
  } else if (desc.kind === 'swiglu' && w.kind === 'swiglu') {
    const gate = linear(g, h, w.gate, desc.gate.module, desc.gate.in, desc.gate.out);
    const up = linear(g, h, w.up, desc.up.module, desc.up.in, desc.up.out);
    const silu = g.op1('Mul', [g.op1('Sigmoid', [gate], `${p}.gate_sigmoid`), gate], `${p}.gate_silu`);
    act = g.op1('Mul', [silu, up], `${p}.act`);
  } else throw new RangeError(`buildDetectorGraph: ${desc.kind} MLP with ${w.kind} weights`);
  const down = desc.down;
  return g.op1('Add', [x, linear(g, act, w.down, down.module, down.in, down.out)], `${p}.residual`);
}
