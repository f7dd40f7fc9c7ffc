/**
 * The GPT-BigCode detector as an ONNX graph (ai.onnx opset 21 + com.microsoft 1), the same math as the
 * float64 reference (src/engine/reference/gptbigcode.ts) for one function per row:
 *
 *   input_ids, attention_mask: int64 [batch, sequence] (right padding, mask 1 = real token)
 *   x = wte[input_ids] + wpe[0..S−1]
 *   per block: x += c_proj(attn(ln_1(x))); x += mlp.c_proj(gelu(mlp.c_fc(ln_2(x))))
 *     attention: fused c_attn → q, k, v (multi-query: one k/v head), softmax(q·kᵀ/√head_dim + bias)·v,
 *     bias = 0 where key ≤ query and mask[key] = 1, −1e9 elsewhere (padding never reaches real tokens)
 *   last = sum(mask) − 1 (one-hot pick); h = ln_f(x[last]); logits = h·scoreᵀ [batch, 2]; probability = softmax(logits)[:, 1]
 *
 * Operators: Gather, Add, Sub, Mul, ReduceSum, Shape, Squeeze, Unsqueeze, Range, LessOrEqual, Equal,
 * Cast, Reshape, Transpose, Split, MatMul, Softmax, LayerNormalization (opset 17 schema),
 * DequantizeLinear (opset 21, blocked; int8 only); com.microsoft Gelu (erf) or FastGelu (tanh) and
 * MatMulNBits (int4 only).
 */
import type { ResolvedConfig } from '../../engine/model/config.ts';
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

/** A block linear in the export format (see weights.ts for the layouts). */
export type LinearWeights =
  | { format: 'f32' | 'f16'; transposed: Uint8Array; bias: Float32Array }
  | { format: 'int8'; values: Int8Array; scales: Float32Array; bias: Float32Array }
  | { format: 'int4'; packed: Uint8Array; scales: Float32Array; blocks: number; bias: Float32Array };

export interface BlockWeights {
  ln1: { weight: Float32Array; bias: Float32Array };
  cAttn: LinearWeights;
  attnProj: LinearWeights;
  ln2: { weight: Float32Array; bias: Float32Array };
  cFc: LinearWeights;
  mlpProj: LinearWeights;
}

export interface DetectorWeights {
  format: OnnxWeightFormat;
  /** [vocab, D] and [n_positions, D]: f32 bytes for 'f32', f16 bytes otherwise. */
  wte: Uint8Array;
  wpe: Uint8Array;
  blocks: BlockWeights[];
  lnF: { weight: Float32Array; bias: Float32Array };
  /** score.weight transposed: [D, 2] f32. */
  scoreT: Float32Array;
}

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

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
  const bias = g.tensor(`${prefix}.bias`, DataType.FLOAT, [out], f32(w.bias));
  return g.op1('Add', [y, bias], `${prefix}.out`);
}

function layerNorm(
  g: GraphBuilder,
  x: string,
  w: { weight: Float32Array; bias: Float32Array },
  prefix: string,
  eps: number,
): string {
  const scale = g.tensor(`${prefix}.weight`, DataType.FLOAT, [w.weight.length], f32(w.weight));
  const bias = g.tensor(`${prefix}.bias`, DataType.FLOAT, [w.bias.length], f32(w.bias));
  return g.op1('LayerNormalization', [x, scale, bias], `${prefix}.out`, {
    axis: -1,
    epsilon: { float: eps },
  });
}

export interface DetectorGraph {
  graph: OnnxTypes.IGraphProto;
  initializers: Initializer[];
  operators: string[];
}

/** Builds the graph; initializers are returned separately (the exporter places their bytes). */
export function buildDetectorGraph(c: ResolvedConfig, w: DetectorWeights): DetectorGraph {
  const g = new GraphBuilder();
  const D = c.n_embd;
  const H = c.n_head;
  const hd = c.headDim;
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

  // f16 tables are widened before the lookup: ORT folds Cast(initializer) at load, so no f16 value
  // reaches a kernel (WebGPU adapters without shader-f16, e.g. SwiftShader, cannot run f16 shaders).
  const table = (name: string, rows: number, bytes: Uint8Array) => {
    const t = g.tensor(name, embType, [rows, D], bytes);
    return embType === DataType.FLOAT16 ? g.op1('Cast', [t], `${name}_f32`, { to: DataType.FLOAT }) : t;
  };
  const wte = table('transformer.wte.weight', c.vocab_size, w.wte);
  const wpe = table('transformer.wpe.weight', c.n_positions, w.wpe);
  const tok = g.op1('Gather', [wte, 'input_ids'], 'embed.tokens', { axis: 0 });
  const pos = g.op1('Gather', [wpe, steps], 'embed.positions', { axis: 0 });
  let x = g.op1('Add', [tok, pos], 'embed.out');

  // Attention bias [batch, 1, S, S]: 0 where the key is allowed (causal and not padding), −1e9 elsewhere.
  const queries = g.op1('Unsqueeze', [steps, g.int64('const.axes1', [1])], 'seq.queries');
  const keys = g.op1('Unsqueeze', [steps, g.int64('const.axes0b', [0])], 'seq.keys');
  const causal = g.op1('Cast', [g.op1('LessOrEqual', [keys, queries], 'mask.causal_bool')], 'mask.causal', {
    to: DataType.FLOAT,
  });
  const maskF = g.op1('Cast', ['attention_mask'], 'mask.keys_f32', { to: DataType.FLOAT });
  const keyMask = g.op1('Unsqueeze', [maskF, g.int64('const.axes12', [1, 2])], 'mask.keys');
  const allowed = g.op1('Mul', [causal, keyMask], 'mask.allowed');
  const bias = g.op1(
    'Mul',
    [g.op1('Sub', [allowed, g.float('const.onef', 1)], 'mask.blocked'), g.float('const.big', 1e9)],
    'mask.bias',
  );

  const scale = g.float('const.attn_scale', 1 / Math.sqrt(hd));
  const perm0213 = { perm: [0, 2, 1, 3] };
  for (let l = 0; l < c.n_layer; l++) {
    const p = `transformer.h.${l}`;
    const b = w.blocks[l];
    const h = layerNorm(g, x, b.ln1, `${p}.ln_1`, c.layer_norm_epsilon);
    const qkv = linear(g, h, b.cAttn, `${p}.attn.c_attn`, D, c.qkvDim);
    let q: string, kT: string, v: string;
    if (c.multi_query) {
      const [q0, k0, v0] = g.op(
        'Split',
        [qkv, g.int64(`${p}.attn.split`, [D, hd, hd])],
        `${p}.attn.qkv`,
        { axis: -1 },
        { outputs: 3 },
      );
      q = g.op1(
        'Transpose',
        [g.op1('Reshape', [q0, g.int64(`${p}.attn.q_shape`, [0, 0, H, hd])], `${p}.attn.q_heads`)],
        `${p}.attn.q`,
        perm0213,
      );
      const k1 = g.op1('Unsqueeze', [k0, g.int64(`${p}.attn.axes1`, [1])], `${p}.attn.k_head`);
      kT = g.op1('Transpose', [k1], `${p}.attn.k_T`, { perm: [0, 1, 3, 2] });
      v = g.op1('Unsqueeze', [v0, g.int64(`${p}.attn.axes1b`, [1])], `${p}.attn.v`);
    } else {
      // Multi-head c_attn rows are interleaved per head: [q_h, k_h, v_h] for h = 0..H−1.
      const heads = g.op1(
        'Reshape',
        [qkv, g.int64(`${p}.attn.qkv_shape`, [0, 0, H, 3 * hd])],
        `${p}.attn.qkv_heads`,
      );
      const [q0, k0, v0] = g.op(
        'Split',
        [heads, g.int64(`${p}.attn.split`, [hd, hd, hd])],
        `${p}.attn.qkv`,
        { axis: -1 },
        { outputs: 3 },
      );
      q = g.op1('Transpose', [q0], `${p}.attn.q`, perm0213);
      kT = g.op1('Transpose', [k0], `${p}.attn.k_T`, { perm: [0, 2, 3, 1] });
      v = g.op1('Transpose', [v0], `${p}.attn.v`, perm0213);
    }
    const scores = g.op1(
      'Add',
      [g.op1('Mul', [g.op1('MatMul', [q, kT], `${p}.attn.qk`), scale], `${p}.attn.scaled`), bias],
      `${p}.attn.scores`,
    );
    const probs = g.op1('Softmax', [scores], `${p}.attn.probs`, { axis: -1 });
    const context = g.op1(
      'Transpose',
      [g.op1('MatMul', [probs, v], `${p}.attn.context_heads`)],
      `${p}.attn.context_T`,
      perm0213,
    );
    const merged = g.op1(
      'Reshape',
      [context, g.int64(`${p}.attn.merge_shape`, [0, 0, D])],
      `${p}.attn.context`,
    );
    x = g.op1('Add', [x, linear(g, merged, b.attnProj, `${p}.attn.c_proj`, D, D)], `${p}.attn.residual`);

    const h2 = layerNorm(g, x, b.ln2, `${p}.ln_2`, c.layer_norm_epsilon);
    const fc = linear(g, h2, b.cFc, `${p}.mlp.c_fc`, D, c.n_inner);
    const act = g.op1(
      c.activation_function === 'gelu' ? 'Gelu' : 'FastGelu',
      [fc],
      `${p}.mlp.act`,
      {},
      { domain: MS_DOMAIN },
    );
    x = g.op1('Add', [x, linear(g, act, b.mlpProj, `${p}.mlp.c_proj`, c.n_inner, D)], `${p}.mlp.residual`);
  }

  // Each row's last real token (index sum(mask) − 1) picked by a one-hot row: exact, and float only.
  const lengths = g.op1('ReduceSum', [maskF, g.int64('const.axes1c', [1])], 'lengths', { keepdims: 1 });
  const lastIndex = g.op1('Sub', [lengths, g.float('const.onef_b', 1)], 'last_index');
  const stepsF = g.op1('Cast', [steps], 'position_ids_f32', { to: DataType.FLOAT });
  const oneHot = g.op1('Cast', [g.op1('Equal', [stepsF, lastIndex], 'last.is_last')], 'last.one_hot', {
    to: DataType.FLOAT,
  });
  const pick = g.op1('Unsqueeze', [oneHot, g.int64('const.axes1d', [1])], 'last.pick');
  const lastHidden = g.op1(
    'Squeeze',
    [g.op1('MatMul', [pick, x], 'hidden.last_row'), g.int64('const.axes1e', [1])],
    'hidden.last',
  );
  const final = layerNorm(g, lastHidden, w.lnF, 'transformer.ln_f', c.layer_norm_epsilon);
  const scoreT = g.tensor('score.weight_T', DataType.FLOAT, [D, 2], f32(w.scoreT));
  g.op('MatMul', [final, scoreT], 'logits');
  const softmax = g.op1('Softmax', ['logits'], 'class_probabilities', { axis: -1 });
  g.op('Gather', [softmax, g.int64('const.vulnerable', [1], true)], 'probability', { axis: 1 });

  const operators = [
    ...new Set(g.nodes.map((n) => (n.domain ? `${n.domain}.${n.opType}` : n.opType!))),
  ].sort();
  return {
    graph: {
      name: 'vulnlab_gpt_bigcode_detector',
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
