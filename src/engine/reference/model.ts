/**
 * Float64 CPU reference of a whole decoder as the lab trains it, built from its description
 * (model/decoder.ts: GPT-BigCode, Llama, Qwen2, StarCoder2) and composed of this folder's per-op
 * references, each with its explicit backward (no autograd):
 *
 *   embeddings (token, learned positions or none, the token embedding's LoRA)
 *   → N × {norm, attention, residual, norm, MLP, residual} → final norm
 *   → the classification head on each function's last token (focal loss) or the LM head (next-token loss)
 *
 * Norms: LayerNorm (with or without bias) or RMSNorm. Linears: matmul + bias + the LoRA branch, with
 * the engine's stateless dropout masks keyed by the linear's site in training mode. Attention: one
 * fused projection or separate q/k/v written side by side into one row, rotary positions on q and k
 * from the batch's position ids, grouped-query heads, packed or paper masks with an optional sliding
 * window. MLP: GELU or SwiGLU. Then global-norm clipping as torch and AdamW (trainRef).
 *
 * Shapes follow docs/ENGINE.md: activations [T, C] with T = packs × pack length, flattened. Meant for
 * tiny configs (tests, fixtures).
 */
import { BadInputError, ShapeError } from '../errors.ts';
import { loraScaling, type LoraConfig } from '../model/config.ts';
import {
  describeDecoder,
  loraParamSpecs,
  qkvWidth,
  type AttentionDesc,
  type DecoderDesc,
  type LinearDesc,
  type MlpDesc,
  type ModelConfig,
  type NormDesc,
} from '../model/decoder.ts';
import type { Objective, PackedBatch } from '../../shared/batch.ts';
import { adamwRef } from './adamw.ts';
import { addRef } from './add.ts';
import {
  attentionBackwardRef,
  attentionForwardRef,
  buildAttentionMask,
  type AttentionMask,
  type AttentionShape,
} from './attention.ts';
import { biasBackwardRef, biasForwardRef } from './bias.ts';
import { placeColumnsRef, takeColumnsRef } from './columns.ts';
import { embeddingForwardRef, embeddingScatterRef } from './embedding.ts';
import { embeddingLoraRef, type EmbeddingLoraRefInput } from './embedding-lora.ts';
import { geluBackwardRef, geluForwardRef } from './gelu.ts';
import { layerNormBackwardRef, layerNormForwardRef } from './layernorm.ts';
import { dropoutMaskRef, loraRef, type LoraRefInput } from './lora.ts';
import { crossEntropyRef, focalLossRef, ntpTargets, type AttentionMode, type FocalOptions } from './loss.ts';
import { matmulRef } from './matmul.ts';
import { rmsNormBackwardRef, rmsNormForwardRef } from './rmsnorm.ts';
import { ropeBackwardRef, ropeForwardRef, ropeQkvLayout, type RopeOptions, type RopeShape } from './rope.ts';
import { swigluBackwardRef, swigluForwardRef } from './swiglu.ts';

export type { AttentionMode } from './loss.ts';
export type { FunctionRef, Objective, PackedBatch } from '../../shared/batch.ts';
export type ParamMap = Map<string, Float64Array>;

export interface ModelSpec {
  /** GPT-BigCode's config or a Llama family's (model_type llama, qwen2, starcoder2). */
  config: ModelConfig;
  lora: LoraConfig | null;
  mode: AttentionMode;
  /**
   * Training-mode LoRA dropout with the engine's stateless masks (kernels/lora.ts) over each adapted
   * linear's input, keyed by (seed, the linear's `site` in the description, step); GPT-BigCode's site
   * is layer·4 + target index. Without it the branch runs as in eval mode. The token embedding's
   * adapter has no dropout (PEFT's lora.Embedding).
   */
  dropout?: { seed: number; step: number };
}

export interface ForwardResult {
  /** Final hidden states [T, D] (after the final norm). */
  hidden: Float64Array;
  /** cls: [F, 2]; ntp: [T, V]. */
  logits: Float64Array;
  /** State the backward pass needs. */
  cache: ForwardCache;
}

/** A linear's input and, when LoRA adapts it, the LoRA reference's input (with its dropout mask). */
interface LinearCache {
  x: Float64Array;
  lora: LoraRefInput | null;
}

interface AttentionCache {
  projections: LinearCache[];
  /** The attention op's input rows [T, qkvWidth]: the projections side by side, q and k rotated. */
  qkv: Float64Array;
  mask: AttentionMask;
  output: LinearCache;
}

type MlpCache =
  | { kind: 'gelu'; up: LinearCache; pre: Float64Array; down: LinearCache }
  | {
      kind: 'swiglu';
      gate: LinearCache;
      up: LinearCache;
      g: Float64Array;
      u: Float64Array;
      down: LinearCache;
    };

interface BlockCache {
  /** The block's input (norm1's). */
  x: Float64Array;
  attention: AttentionCache;
  /** x + attention: the residual stream between the sublayers (norm2's input). */
  mid: Float64Array;
  mlp: MlpCache;
}

interface ForwardCache {
  d: DecoderDesc;
  T: number;
  ids: Int32Array;
  pos: Int32Array;
  embeddingLora: EmbeddingLoraRefInput | null;
  blocks: BlockCache[];
  /** The final norm's input. */
  last: Float64Array;
  hidden: Float64Array;
  objective: Objective;
  /** cls: the row of each function's last token, and those rows of `hidden` [F, D]. */
  lastRows: Int32Array;
  lastHidden: Float64Array;
}

/** What every op of one pass reads: the description, parameters, batch geometry, LoRA. */
interface Pass {
  d: DecoderDesc;
  params: ParamMap;
  T: number;
  pos: Int32Array;
  lora: LoraConfig | null;
  dropout: ModelSpec['dropout'];
}

function get(params: ParamMap, name: string): Float64Array {
  const v = params.get(name);
  if (!v) throw new ShapeError(`reference model: parameter ${name} is missing`);
  return v;
}

/** grads[name] += g (every parameter of the map has a zeroed gradient; see zeroGrads). */
function accumulate(grads: ParamMap, name: string, g: ArrayLike<number>): void {
  const sum = get(grads, name);
  for (let i = 0; i < sum.length; i++) sum[i] += g[i];
}

/** Rows `rows` of a [*, C] table (the embedding gather without positions). */
const gatherRows = (table: Float64Array, rows: ArrayLike<number>, C: number): Float64Array =>
  embeddingForwardRef(rows, undefined, table, undefined, C);

function flat(rows: number[][]): Int32Array {
  const L = rows[0]?.length ?? 0;
  const out = new Int32Array(rows.length * L);
  rows.forEach((row, b) => {
    if (row.length !== L) throw new ShapeError(`batch: pack ${b} has ${row.length} tokens, pack 0 has ${L}`);
    out.set(row, b * L);
  });
  return out;
}

// ---- Norms: LayerNorm (bias optional) or RMSNorm over the model width. The cache is the input. ----

function normForward(n: NormDesc, p: Pass, x: Float64Array): Float64Array {
  const D = p.d.width;
  const w = get(p.params, n.weight);
  if (n.kind === 'rmsnorm') return rmsNormForwardRef(x, w, p.T, D, n.eps).y;
  const b = n.bias ? get(p.params, n.bias) : new Float64Array(D);
  return layerNormForwardRef(x, w, b, p.T, D, n.eps).y;
}

function normBackward(
  n: NormDesc,
  p: Pass,
  x: Float64Array,
  dy: Float64Array,
  grads: ParamMap,
): Float64Array {
  const D = p.d.width;
  const w = get(p.params, n.weight);
  if (n.kind === 'rmsnorm') {
    const r = rmsNormBackwardRef(x, w, dy, p.T, D, n.eps);
    accumulate(grads, n.weight, r.dweight);
    return r.dx;
  }
  const r = layerNormBackwardRef(x, w, dy, p.T, D, n.eps);
  accumulate(grads, n.weight, r.dgamma);
  if (n.bias) accumulate(grads, n.bias, r.dbeta);
  return r.dx;
}

// ---- Linears: y = x·Wᵀ (+ b) (+ s·(drop(x)·Aᵀ)·Bᵀ). ----

/** The LoRA reference's input for linear `l` on x, or null when LoRA does not adapt it. */
function loraInput(l: LinearDesc, p: Pass, x: Float64Array): LoraRefInput | null {
  const { lora } = p;
  if (!lora || !lora.targets.includes(l.target)) return null;
  const drop = p.dropout && lora.dropout > 0 ? p.dropout : null;
  return {
    x,
    a: get(p.params, `${l.module}.lora_A.weight`),
    b: get(p.params, `${l.module}.lora_B.weight`),
    T: p.T,
    inFeatures: l.in,
    outFeatures: l.out,
    rank: lora.r,
    alpha: lora.alpha,
    dropout: drop ? lora.dropout : 0,
    mask: drop ? dropoutMaskRef(p.T * l.in, drop.seed, l.site, drop.step, lora.dropout) : undefined,
  };
}

function linearForward(l: LinearDesc, p: Pass, x: Float64Array): { y: Float64Array; cache: LinearCache } {
  const { T } = p;
  let y = matmulRef(x, get(p.params, `${l.module}.weight`), undefined, T, l.out, l.in);
  if (l.bias) y = biasForwardRef(y, get(p.params, `${l.module}.bias`), T, l.out);
  const lora = loraInput(l, p, x);
  // The LoRA reference runs forward and backward together; its backward here is of a zero gradient.
  if (lora) y = addRef(y, loraRef(lora, new Float64Array(T * l.out)).y);
  return { y, cache: { x, lora } };
}

function linearBackward(
  l: LinearDesc,
  p: Pass,
  cache: LinearCache,
  dy: Float64Array,
  grads: ParamMap,
): Float64Array {
  const { T } = p;
  const name = `${l.module}.weight`;
  accumulate(grads, name, matmulRef(dy, cache.x, undefined, l.out, l.in, T, { transA: true, transB: false }));
  if (l.bias) accumulate(grads, `${l.module}.bias`, biasBackwardRef(dy, T, l.out));
  const dx = matmulRef(dy, get(p.params, name), undefined, T, l.in, l.out, { transB: false });
  if (!cache.lora) return dx;
  const r = loraRef(cache.lora, dy);
  accumulate(grads, `${l.module}.lora_A.weight`, r.gradA);
  accumulate(grads, `${l.module}.lora_B.weight`, r.gradB);
  return addRef(dx, r.dx);
}

// ---- Attention: projections → [q | k | v] rows → rotary q, k → masked softmax attention → output. ----

function attentionShape(a: AttentionDesc): AttentionShape {
  if (a.layout === 'interleaved') {
    if (a.kvHeads !== a.nHead) {
      throw new ShapeError(
        `reference model: the interleaved layout needs kvHeads = nHead (${a.kvHeads}, ${a.nHead})`,
      );
    }
    return { nHead: a.nHead, headDim: a.headDim, multiQuery: false };
  }
  return { nHead: a.nHead, headDim: a.headDim, multiQuery: false, kvHeads: a.kvHeads };
}

function rope(a: AttentionDesc, T: number): { shape: RopeShape; options: RopeOptions } | null {
  if (!a.rope) return null;
  const { nHead, kvHeads, headDim } = a;
  return {
    shape: { T, nHead, nKvHead: kvHeads, headDim, layout: ropeQkvLayout(a.layout, nHead, kvHeads, headDim) },
    options: { theta: a.rope.theta, scaling: a.rope.scaling },
  };
}

/** Column offset of each projection's output in the qkv row; throws unless they fill it exactly. */
function projectionOffsets(a: AttentionDesc): number[] {
  const offsets: number[] = [];
  let offset = 0;
  for (const l of a.projections) {
    offsets.push(offset);
    offset += l.out;
  }
  if (offset !== qkvWidth(a)) {
    throw new ShapeError(
      `reference model: q/k/v projections write ${offset} columns, the row has ${qkvWidth(a)}`,
    );
  }
  return offsets;
}

function attentionForward(
  a: AttentionDesc,
  p: Pass,
  x: Float64Array,
  mask: AttentionMask,
): { y: Float64Array; cache: AttentionCache } {
  const { T } = p;
  const width = qkvWidth(a);
  const offsets = projectionOffsets(a);
  const projections = a.projections.map((l) => linearForward(l, p, x));
  let qkv = projections[0].y;
  if (projections.length > 1) {
    qkv = new Float64Array(T * width);
    projections.forEach(({ y }, i) => {
      qkv = placeColumnsRef(y, qkv, { T, width: a.projections[i].out, rowStride: width, offset: offsets[i] });
    });
  }
  const r = rope(a, T);
  if (r) qkv = ropeForwardRef(qkv, p.pos, r.shape, r.options);
  const { out } = attentionForwardRef(qkv, mask, attentionShape(a));
  const output = linearForward(a.output, p, out);
  return {
    y: output.y,
    cache: { projections: projections.map((pr) => pr.cache), qkv, mask, output: output.cache },
  };
}

function attentionBackward(
  a: AttentionDesc,
  p: Pass,
  cache: AttentionCache,
  dy: Float64Array,
  grads: ParamMap,
): Float64Array {
  const { T } = p;
  const dOut = linearBackward(a.output, p, cache.output, dy, grads);
  let dqkv = attentionBackwardRef(cache.qkv, dOut, cache.mask, attentionShape(a));
  const r = rope(a, T);
  if (r) dqkv = ropeBackwardRef(dqkv, p.pos, r.shape, r.options);
  if (a.projections.length === 1)
    return linearBackward(a.projections[0], p, cache.projections[0], dqkv, grads);
  const width = qkvWidth(a);
  const offsets = projectionOffsets(a);
  return a.projections
    .map((l, i) => {
      const dyi = takeColumnsRef(dqkv, { T, width: l.out, rowStride: width, offset: offsets[i] });
      return linearBackward(l, p, cache.projections[i], dyi, grads);
    })
    .reduce((sum, dx) => addRef(sum, dx));
}

// ---- MLP: down(gelu(up(x))) or down(silu(gate(x))·up(x)). ----

function mlpForward(m: MlpDesc, p: Pass, x: Float64Array): { y: Float64Array; cache: MlpCache } {
  if (m.kind === 'gelu') {
    const up = linearForward(m.up, p, x);
    const down = linearForward(m.down, p, geluForwardRef(up.y, m.activation));
    return { y: down.y, cache: { kind: 'gelu', up: up.cache, pre: up.y, down: down.cache } };
  }
  const gate = linearForward(m.gate, p, x);
  const up = linearForward(m.up, p, x);
  const down = linearForward(m.down, p, swigluForwardRef(gate.y, up.y));
  return {
    y: down.y,
    cache: { kind: 'swiglu', gate: gate.cache, up: up.cache, g: gate.y, u: up.y, down: down.cache },
  };
}

function mlpBackward(m: MlpDesc, p: Pass, cache: MlpCache, dy: Float64Array, grads: ParamMap): Float64Array {
  if (m.kind === 'gelu' && cache.kind === 'gelu') {
    const dact = linearBackward(m.down, p, cache.down, dy, grads);
    return linearBackward(m.up, p, cache.up, geluBackwardRef(cache.pre, dact, m.activation), grads);
  }
  if (m.kind === 'swiglu' && cache.kind === 'swiglu') {
    const dh = linearBackward(m.down, p, cache.down, dy, grads);
    const { dgate, dup } = swigluBackwardRef(cache.g, cache.u, dh);
    return addRef(
      linearBackward(m.gate, p, cache.gate, dgate, grads),
      linearBackward(m.up, p, cache.up, dup, grads),
    );
  }
  throw new ShapeError('reference model: the MLP cache does not match the description');
}

// ---- The model. ----

function passOf(spec: ModelSpec, d: DecoderDesc, params: ParamMap, T: number, pos: Int32Array): Pass {
  if (spec.lora) loraScaling(spec.lora, d.loraTargets);
  return { d, params, T, pos, lora: spec.lora, dropout: spec.dropout };
}

/** Full forward pass; logits per function ('cls', score head) or per token over the vocabulary ('ntp'). */
export function forwardRef(
  spec: ModelSpec,
  params: ParamMap,
  batch: PackedBatch,
  objective: Objective,
): ForwardResult {
  const d = describeDecoder(spec.config);
  const D = d.width;
  const ids = flat(batch.inputIds);
  const pos = flat(batch.positionIds);
  const seg = flat(batch.segmentIds);
  const L = batch.inputIds[0].length;
  const T = ids.length;
  for (let t = 0; t < T; t++) {
    if (ids[t] < 0 || ids[t] >= d.vocab)
      throw new BadInputError(`token id ${ids[t]} at ${t} outside the vocabulary`);
    if (pos[t] < 0 || pos[t] >= d.maxPositions)
      throw new BadInputError(`position id ${pos[t]} at ${t} out of range`);
  }
  const p = passOf(spec, d, params, T, pos);

  const wte = get(params, d.tokenEmbedding);
  let x = d.positionEmbedding
    ? embeddingForwardRef(ids, pos, wte, get(params, d.positionEmbedding.weight), D)
    : gatherRows(wte, ids, D);
  let embeddingLora: EmbeddingLoraRefInput | null = null;
  if (spec.lora?.targets.includes('wte')) {
    embeddingLora = {
      ids,
      a: get(params, d.embeddingLora.a),
      b: get(params, d.embeddingLora.b),
      T,
      D,
      V: d.vocab,
      rank: spec.lora.r,
      alpha: spec.lora.alpha,
    };
    // As the linears' LoRA: forward and backward together, here of a zero gradient.
    x = addRef(x, embeddingLoraRef(embeddingLora, new Float64Array(T * D)).y);
  }

  const masks = new Map<number | null, AttentionMask>();
  const maskOf = (window: number | null): AttentionMask => {
    let mask = masks.get(window);
    if (!mask) {
      mask = buildAttentionMask(seg, L, spec.mode, window ?? undefined);
      masks.set(window, mask);
    }
    return mask;
  };
  const blocks: BlockCache[] = [];
  for (const block of d.blocks) {
    const att = attentionForward(
      block.attention,
      p,
      normForward(block.norm1, p, x),
      maskOf(block.attention.slidingWindow),
    );
    const mid = addRef(x, att.y);
    const mlp = mlpForward(block.mlp, p, normForward(block.norm2, p, mid));
    blocks.push({ x, attention: att.cache, mid, mlp: mlp.cache });
    x = addRef(mid, mlp.y);
  }
  const hidden = normForward(d.finalNorm, p, x);

  const lastRows = new Int32Array(objective === 'cls' ? batch.functions.map((f) => f.pack * L + f.last) : []);
  const lastHidden = gatherRows(hidden, lastRows, D);
  const logits =
    objective === 'cls'
      ? matmulRef(lastHidden, get(params, d.score), undefined, lastRows.length, 2, D)
      : matmulRef(hidden, get(params, d.lmHead), undefined, T, d.vocab, D);
  return {
    hidden,
    logits,
    cache: { d, T, ids, pos, embeddingLora, blocks, last: x, hidden, objective, lastRows, lastHidden },
  };
}

/** Zero gradients for every parameter in `params` (base, LoRA and score). */
function zeroGrads(params: ParamMap): ParamMap {
  const grads: ParamMap = new Map();
  for (const [name, v] of params) grads.set(name, new Float64Array(v.length));
  return grads;
}

/**
 * Backward pass from dLoss/dlogits: gradients of every parameter in `params` (a tied LM head's
 * gradient and the token embedding's add up in one tensor).
 */
export function backwardRef(
  spec: ModelSpec,
  params: ParamMap,
  cache: ForwardCache,
  dlogits: Float64Array,
): ParamMap {
  const { d, T, ids, pos, hidden, lastRows } = cache;
  const D = d.width;
  const p = passOf(spec, d, params, T, pos);
  const grads = zeroGrads(params);

  let dx: Float64Array;
  if (cache.objective === 'cls') {
    const F = lastRows.length;
    accumulate(
      grads,
      d.score,
      matmulRef(dlogits, cache.lastHidden, undefined, 2, D, F, { transA: true, transB: false }),
    );
    const dLast = matmulRef(dlogits, get(params, d.score), undefined, F, D, 2, { transB: false });
    dx = embeddingScatterRef(lastRows, dLast, T, D);
  } else {
    const V = d.vocab;
    accumulate(
      grads,
      d.lmHead,
      matmulRef(dlogits, hidden, undefined, V, D, T, { transA: true, transB: false }),
    );
    dx = matmulRef(dlogits, get(params, d.lmHead), undefined, T, D, V, { transB: false });
  }
  dx = normBackward(d.finalNorm, p, cache.last, dx, grads);

  for (let l = d.blocks.length - 1; l >= 0; l--) {
    const block = d.blocks[l];
    const b = cache.blocks[l];
    // next = mid + mlp(norm2(mid)); mid = x + attention(norm1(x)).
    const dmlp = mlpBackward(block.mlp, p, b.mlp, dx, grads);
    const dmid = addRef(dx, normBackward(block.norm2, p, b.mid, dmlp, grads));
    const datt = attentionBackward(block.attention, p, b.attention, dmid, grads);
    dx = addRef(dmid, normBackward(block.norm1, p, b.x, datt, grads));
  }

  accumulate(grads, d.tokenEmbedding, embeddingScatterRef(ids, dx, d.vocab, D));
  if (d.positionEmbedding) {
    accumulate(grads, d.positionEmbedding.weight, embeddingScatterRef(pos, dx, d.maxPositions, D));
  }
  if (cache.embeddingLora) {
    const r = embeddingLoraRef(cache.embeddingLora, dx);
    accumulate(grads, d.embeddingLora.a, r.dA);
    accumulate(grads, d.embeddingLora.b, r.dB);
  }
  return grads;
}

export interface LossOptions {
  objective: Objective;
  focal: FocalOptions;
}

export interface LossAndGrads {
  loss: number;
  logits: Float64Array;
  grads: ParamMap;
}

/** Loss of the batch and gradients of every parameter (callers pick the trainable ones). */
export function lossAndGradsRef(
  spec: ModelSpec,
  params: ParamMap,
  batch: PackedBatch,
  options: LossOptions,
): LossAndGrads {
  const fwd = forwardRef(spec, params, batch, options.objective);
  const { loss, dlogits } = lossFromLogits(spec, batch, fwd.logits, options);
  return { loss, logits: fwd.logits, grads: backwardRef(spec, params, fwd.cache, dlogits) };
}

/**
 * Gradient accumulation: the mean of the micro-batches' losses and gradients, each micro-batch's loss
 * normalized on its own (its functions or target tokens), as a PyTorch loop of `(loss / N).backward()`.
 * It equals the loss and gradients of one batch holding all the micro-batches only when every
 * micro-batch has the same normalizer (function count for cls, target-token count for ntp).
 */
export function accumulatedLossAndGradsRef(
  spec: ModelSpec,
  params: ParamMap,
  batches: readonly PackedBatch[],
  options: LossOptions,
): { loss: number; grads: ParamMap } {
  const N = batches.length;
  let loss = 0;
  const grads = zeroGrads(params);
  for (const batch of batches) {
    const micro = lossAndGradsRef(spec, params, batch, options);
    loss += micro.loss / N;
    for (const [name, g] of micro.grads) {
      const sum = get(grads, name);
      for (let i = 0; i < g.length; i++) sum[i] += g[i] / N;
    }
  }
  return { loss, grads };
}

export function lossFromLogits(
  spec: ModelSpec,
  batch: PackedBatch,
  logits: Float64Array,
  options: LossOptions,
) {
  if (options.objective === 'cls') {
    return focalLossRef(
      logits,
      batch.functions.map((f) => f.label),
      batch.functions.map((f) => f.weight),
      options.focal,
    );
  }
  const L = batch.inputIds[0].length;
  const targets = ntpTargets(flat(batch.inputIds), flat(batch.segmentIds), L, spec.mode);
  return crossEntropyRef(logits, targets, describeDecoder(spec.config).vocab);
}

/** Loss only (for finite differences). */
export function lossRef(spec: ModelSpec, params: ParamMap, batch: PackedBatch, options: LossOptions): number {
  const fwd = forwardRef(spec, params, batch, options.objective);
  return lossFromLogits(spec, batch, fwd.logits, options).loss;
}

/** Global L2 norm of the gradients (in the order given); NaN if any is not finite, as torch's. */
export function globalNorm(grads: Iterable<ArrayLike<number>>): number {
  let sum = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  return Math.sqrt(sum);
}

/**
 * torch.nn.utils.clip_grad_norm_: scales in place by min(1, max/(norm + 1e-6)); returns the norm.
 * (gradnorm.ts is the engine's shader, which zeroes the step on non-finite gradients instead.)
 */
export function clipGradNormRef(grads: { [i: number]: number; length: number }[], maxNorm: number): number {
  const norm = globalNorm(grads);
  const coef = Math.min(1, maxNorm / (norm + 1e-6));
  if (coef < 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= coef;
  return norm;
}

export interface AdamWOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weight_decay: number;
}

export interface AdamWState {
  step: number;
  m: ParamMap;
  v: ParamMap;
}

/** One torch.optim.AdamW step in place over `names` (decoupled decay, bias-corrected moments). */
export function adamwStepRef(
  params: ParamMap,
  grads: ParamMap,
  names: readonly string[],
  state: AdamWState,
  o: AdamWOptions,
): void {
  state.step++;
  for (const name of names) {
    const p = get(params, name);
    let m = state.m.get(name);
    let v = state.v.get(name);
    if (!m || !v) {
      m = new Float64Array(p.length);
      v = new Float64Array(p.length);
      state.m.set(name, m);
      state.v.set(name, v);
    }
    adamwRef(p, get(grads, name), m, v, {
      step: state.step,
      lr: o.lr,
      beta1: o.betas[0],
      beta2: o.betas[1],
      eps: o.eps,
      weightDecay: o.weight_decay,
    });
  }
}

export interface TrainOptions extends LossOptions, AdamWOptions {
  max_grad_norm: number;
  steps: number;
  /** Names of the trained parameters. */
  trainable: readonly string[];
}

export interface TrainRecord {
  loss: number;
  grad_norm: number;
}

/**
 * `steps` full steps on the same batch (loss, grads, clip, AdamW); mutates `params`. Given several
 * batches, each step accumulates them as micro-batches (accumulatedLossAndGradsRef): one clip and one
 * AdamW update on the mean gradient, and the record's loss is the micro-batches' mean.
 */
export function trainRef(
  spec: ModelSpec,
  params: ParamMap,
  batch: PackedBatch | readonly PackedBatch[],
  o: TrainOptions,
): TrainRecord[] {
  const state: AdamWState = { step: 0, m: new Map(), v: new Map() };
  const records: TrainRecord[] = [];
  const batches = 'inputIds' in batch ? [batch] : batch;
  for (let s = 0; s < o.steps; s++) {
    const { loss, grads } = accumulatedLossAndGradsRef(spec, params, batches, o);
    const norm = clipGradNormRef(
      o.trainable.map((n) => get(grads, n)),
      o.max_grad_norm,
    );
    records.push({ loss, grad_norm: norm });
    adamwStepRef(params, grads, o.trainable, state, o);
  }
  return records;
}

/** The LoRA tensors' names of a spec, in checkpoint order (useful to build parameter maps). */
export function loraNames(spec: ModelSpec): string[] {
  return spec.lora ? loraParamSpecs(spec.config, spec.lora).map((s) => s.name) : [];
}
