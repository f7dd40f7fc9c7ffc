/**
 * Float64 CPU reference of the whole GPT-BigCode model as the lab trains it: embeddings with position
 * ids, pre-LayerNorm blocks with multi-query or multi-head attention over packed sequences, LoRA on the
 * block linears, the classification head on each function's last token (focal loss) or the tied
 * lm_head (next-token loss), an explicit backward pass (no autograd), global-norm clipping and AdamW.
 *
 * Shapes follow docs/ENGINE.md: activations [T, C] with T = packs × pack length, flattened. Meant for
 * tiny configs (tests, fixtures); LoRA dropout is not applied (the reference is deterministic).
 */
import { BadInputError, ShapeError } from '../errors.ts';
import {
  EMBEDDING_LORA_A,
  EMBEDDING_LORA_B,
  LINEAR_TARGETS,
  blockPrefix,
  linearShape,
  loraScaling,
  resolveConfig,
  type GptBigCodeConfig,
  type LoraConfig,
  type LinearTarget,
  type ResolvedConfig,
} from '../model/config.ts';
import { dropoutMaskRef } from './lora.ts';
import type { Objective, PackedBatch } from '../../shared/batch.ts';
import { crossEntropyRef, focalLossRef, ntpTargets, type AttentionMode, type FocalOptions } from './loss.ts';

export type { AttentionMode } from './loss.ts';
export type { FunctionRef, Objective, PackedBatch } from '../../shared/batch.ts';
export type ParamMap = Map<string, Float64Array>;

export interface ModelSpec {
  config: GptBigCodeConfig;
  lora: LoraConfig | null;
  mode: AttentionMode;
  /**
   * Training-mode LoRA dropout with the engine's stateless masks (kernels/lora.ts): site
   * layer·4 + target index, keyed by (seed, site, step). Without it the branch runs as in eval mode.
   */
  dropout?: { seed: number; step: number };
}

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/**
 * erf in float64 from the all-positive series erf(x) = 2/√π·e^(−x²)·Σ (2x²)ⁿ x / (2n+1)!!, which
 * has no cancellation; |erf(x)| rounds to 1 beyond |x| = 6.
 */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a >= 6) return Math.sign(x);
  if (a === 0) return x;
  const x2 = a * a;
  let term = a;
  let sum = a;
  for (let n = 1; n < 500; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return Math.sign(x) * TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

const TANH_K = Math.sqrt(2 / Math.PI);

export function geluRef(x: number, kind: GptBigCodeConfig['activation_function']): number {
  if (kind === 'gelu') return 0.5 * x * (1 + erf(x * SQRT1_2));
  return 0.5 * x * (1 + Math.tanh(TANH_K * (x + 0.044715 * x * x * x)));
}

export function geluGradRef(x: number, kind: GptBigCodeConfig['activation_function']): number {
  if (kind === 'gelu') return 0.5 * (1 + erf(x * SQRT1_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
  const th = Math.tanh(TANH_K * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * TANH_K * (1 + 3 * 0.044715 * x * x);
}

/**
 * First key each token may attend to (flat index): its segment's start (packed) or its pack's start
 * (paper). Token t attends to keys k in [keyStart[t], t] with segment[k] ≠ −1; padding queries attend
 * to nothing.
 */
export function keyStarts(
  segmentIds: ArrayLike<number>,
  packLength: number,
  mode: AttentionMode,
): Int32Array {
  const T = segmentIds.length;
  const out = new Int32Array(T);
  for (let t = 0; t < T; t++) {
    const packStart = t - (t % packLength);
    if (mode === 'paper') {
      out[t] = packStart;
      continue;
    }
    let k = t;
    while (k > packStart && segmentIds[k - 1] === segmentIds[t]) k--;
    out[t] = k;
  }
  return out;
}

interface LinearCache {
  x: Float64Array;
  /** The LoRA branch's input: dropout(x), or x itself without dropout. */
  xd?: Float64Array;
  /** x·Aᵀ [T, r] when LoRA is on this module. */
  xa: Float64Array | null;
}

interface LayerNormCache {
  xhat: Float64Array;
  rstd: Float64Array;
}

interface BlockCache {
  ln1: LayerNormCache;
  cAttn: LinearCache;
  qkv: Float64Array;
  /** Softmax probabilities per (token, head) over keys keyStart..t. */
  probs: (Float64Array | null)[];
  attnProj: LinearCache;
  ln2: LayerNormCache;
  cFc: LinearCache;
  pre: Float64Array;
  mlpProj: LinearCache;
}

export interface ForwardResult {
  /** Final hidden states [T, D] (after ln_f). */
  hidden: Float64Array;
  /** cls: [F, 2]; ntp: [T, V]. */
  logits: Float64Array;
  /** State the backward pass needs. */
  cache: ForwardCache;
}

interface ForwardCache {
  c: ResolvedConfig;
  T: number;
  ids: Int32Array;
  pos: Int32Array;
  seg: Int32Array;
  keyStart: Int32Array;
  blocks: BlockCache[];
  lnF: LayerNormCache;
  hidden: Float64Array;
  lastRows: Int32Array;
  objective: Objective;
}

function get(params: ParamMap, name: string): Float64Array {
  const v = params.get(name);
  if (!v) throw new ShapeError(`reference model: parameter ${name} is missing`);
  return v;
}

function layerNorm(
  x: Float64Array,
  w: Float64Array,
  b: Float64Array,
  T: number,
  D: number,
  eps: number,
): { y: Float64Array; cache: LayerNormCache } {
  const y = new Float64Array(T * D);
  const xhat = new Float64Array(T * D);
  const rstd = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    let mean = 0;
    for (let i = 0; i < D; i++) mean += x[t * D + i];
    mean /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (x[t * D + i] - mean) ** 2;
    const r = 1 / Math.sqrt(v / D + eps);
    rstd[t] = r;
    for (let i = 0; i < D; i++) {
      const h = (x[t * D + i] - mean) * r;
      xhat[t * D + i] = h;
      y[t * D + i] = h * w[i] + b[i];
    }
  }
  return { y, cache: { xhat, rstd } };
}

function layerNormBackward(
  dy: Float64Array,
  cache: LayerNormCache,
  w: Float64Array,
  dw: Float64Array,
  db: Float64Array,
  T: number,
  D: number,
): Float64Array {
  const dx = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    let m1 = 0;
    let m2 = 0;
    for (let i = 0; i < D; i++) {
      const g = dy[t * D + i];
      const h = cache.xhat[t * D + i];
      dw[i] += g * h;
      db[i] += g;
      const dh = g * w[i];
      m1 += dh;
      m2 += dh * h;
    }
    m1 /= D;
    m2 /= D;
    for (let i = 0; i < D; i++) {
      const dh = dy[t * D + i] * w[i];
      dx[t * D + i] = cache.rstd[t] * (dh - m1 - cache.xhat[t * D + i] * m2);
    }
  }
  return dx;
}

interface LoraBranch {
  A: Float64Array;
  B: Float64Array;
  r: number;
  s: number;
  /** Dropout keep mask over [T, in] (training mode) and 1/(1−p); null without dropout. */
  mask: Uint8Array | null;
  keepScale: number;
}

/** y = x·Wᵀ + b (+ s·(drop(x)·Aᵀ)·Bᵀ). */
function linear(
  x: Float64Array,
  T: number,
  inp: number,
  out: number,
  W: Float64Array,
  b: Float64Array | null,
  lora: LoraBranch | null,
): { y: Float64Array; cache: LinearCache } {
  const y = new Float64Array(T * out);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < out; o++) {
      let sum = b ? b[o] : 0;
      for (let i = 0; i < inp; i++) sum += x[t * inp + i] * W[o * inp + i];
      y[t * out + o] = sum;
    }
  }
  let xa: Float64Array | null = null;
  let xd = x;
  if (lora) {
    const { A, B, r, s, mask, keepScale } = lora;
    if (mask) xd = x.map((v, i) => (mask[i] ? v * keepScale : 0));
    xa = new Float64Array(T * r);
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < r; j++) {
        let sum = 0;
        for (let i = 0; i < inp; i++) sum += xd[t * inp + i] * A[j * inp + i];
        xa[t * r + j] = sum;
      }
      for (let o = 0; o < out; o++) {
        let sum = 0;
        for (let j = 0; j < r; j++) sum += xa[t * r + j] * B[o * r + j];
        y[t * out + o] += s * sum;
      }
    }
  }
  return { y, cache: { x, xa, xd } };
}

function linearBackward(
  dy: Float64Array,
  cache: LinearCache,
  T: number,
  inp: number,
  out: number,
  W: Float64Array,
  grads: { dW: Float64Array; db: Float64Array | null },
  lora: (LoraBranch & { dA: Float64Array; dB: Float64Array }) | null,
): Float64Array {
  const { x, xa } = cache;
  const dx = new Float64Array(T * inp);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < out; o++) {
      const g = dy[t * out + o];
      if (g === 0) continue;
      if (grads.db) grads.db[o] += g;
      for (let i = 0; i < inp; i++) {
        grads.dW[o * inp + i] += g * x[t * inp + i];
        dx[t * inp + i] += g * W[o * inp + i];
      }
    }
  }
  if (lora && xa) {
    const { A, B, r, s, dA, dB, mask, keepScale } = lora;
    const xd = cache.xd ?? x;
    const dxa = new Float64Array(r);
    for (let t = 0; t < T; t++) {
      dxa.fill(0);
      for (let o = 0; o < out; o++) {
        const g = s * dy[t * out + o];
        for (let j = 0; j < r; j++) {
          dB[o * r + j] += g * xa[t * r + j];
          dxa[j] += g * B[o * r + j];
        }
      }
      for (let j = 0; j < r; j++) {
        for (let i = 0; i < inp; i++) {
          dA[j * inp + i] += dxa[j] * xd[t * inp + i];
          const k = t * inp + i;
          if (!mask) dx[k] += dxa[j] * A[j * inp + i];
          else if (mask[k]) dx[k] += dxa[j] * A[j * inp + i] * keepScale;
        }
      }
    }
  }
  return dx;
}

/** Column offsets of head h's q, k and v inside a c_attn output row. */
export function qkvOffsets(c: ResolvedConfig, h: number): { q: number; k: number; v: number } {
  const hd = c.headDim;
  if (c.multi_query) return { q: h * hd, k: c.n_embd, v: c.n_embd + hd };
  return { q: h * 3 * hd, k: h * 3 * hd + hd, v: h * 3 * hd + 2 * hd };
}

function attention(
  c: ResolvedConfig,
  qkv: Float64Array,
  T: number,
  seg: Int32Array,
  keyStart: Int32Array,
): { out: Float64Array; probs: (Float64Array | null)[] } {
  const { n_head: H, headDim: hd, qkvDim: Q, n_embd: D } = c;
  const scale = 1 / Math.sqrt(hd);
  const out = new Float64Array(T * D);
  const probs: (Float64Array | null)[] = new Array(T * H).fill(null);
  for (let h = 0; h < H; h++) {
    const off = qkvOffsets(c, h);
    for (let t = 0; t < T; t++) {
      if (seg[t] === -1) continue;
      const k0 = keyStart[t];
      const p = new Float64Array(t - k0 + 1);
      let max = -Infinity;
      for (let k = k0; k <= t; k++) {
        if (seg[k] === -1) {
          p[k - k0] = -Infinity;
          continue;
        }
        let s = 0;
        for (let j = 0; j < hd; j++) s += qkv[t * Q + off.q + j] * qkv[k * Q + off.k + j];
        p[k - k0] = s * scale;
        max = Math.max(max, s * scale);
      }
      let sum = 0;
      for (let i = 0; i < p.length; i++) {
        p[i] = p[i] === -Infinity ? 0 : Math.exp(p[i] - max);
        sum += p[i];
      }
      for (let i = 0; i < p.length; i++) p[i] /= sum;
      probs[t * H + h] = p;
      for (let k = k0; k <= t; k++) {
        const pk = p[k - k0];
        if (pk === 0) continue;
        for (let j = 0; j < hd; j++) out[t * D + h * hd + j] += pk * qkv[k * Q + off.v + j];
      }
    }
  }
  return { out, probs };
}

function attentionBackward(
  c: ResolvedConfig,
  qkv: Float64Array,
  probs: (Float64Array | null)[],
  dout: Float64Array,
  T: number,
  keyStart: Int32Array,
): Float64Array {
  const { n_head: H, headDim: hd, qkvDim: Q, n_embd: D } = c;
  const scale = 1 / Math.sqrt(hd);
  const dqkv = new Float64Array(T * Q);
  for (let h = 0; h < H; h++) {
    const off = qkvOffsets(c, h);
    for (let t = 0; t < T; t++) {
      const p = probs[t * H + h];
      if (!p) continue;
      const k0 = keyStart[t];
      const dp = new Float64Array(p.length);
      let dot = 0;
      for (let k = k0; k <= t; k++) {
        const pk = p[k - k0];
        let g = 0;
        for (let j = 0; j < hd; j++) {
          const d = dout[t * D + h * hd + j];
          g += d * qkv[k * Q + off.v + j];
          dqkv[k * Q + off.v + j] += pk * d;
        }
        dp[k - k0] = g;
        dot += pk * g;
      }
      for (let k = k0; k <= t; k++) {
        const ds = p[k - k0] * (dp[k - k0] - dot) * scale;
        if (ds === 0) continue;
        for (let j = 0; j < hd; j++) {
          dqkv[t * Q + off.q + j] += ds * qkv[k * Q + off.k + j];
          dqkv[k * Q + off.k + j] += ds * qkv[t * Q + off.q + j];
        }
      }
    }
  }
  return dqkv;
}

function flat(rows: number[][]): Int32Array {
  const L = rows[0]?.length ?? 0;
  const out = new Int32Array(rows.length * L);
  rows.forEach((row, b) => {
    if (row.length !== L) throw new ShapeError(`batch: pack ${b} has ${row.length} tokens, pack 0 has ${L}`);
    out.set(row, b * L);
  });
  return out;
}

function loraFor(
  spec: ModelSpec,
  params: ParamMap,
  layer: number,
  target: LinearTarget,
  T: number,
): LoraBranch | null {
  const lora = spec.lora;
  if (!lora || !lora.targets.includes(target)) return null;
  const m = `${blockPrefix(layer)}.${target}`;
  let mask: Uint8Array | null = null;
  if (spec.dropout && lora.dropout > 0) {
    const site = layer * LINEAR_TARGETS.length + LINEAR_TARGETS.indexOf(target);
    const n = T * linearShape(resolveConfig(spec.config), target)[1];
    mask = dropoutMaskRef(n, spec.dropout.seed, site, spec.dropout.step, lora.dropout);
  }
  return {
    A: get(params, `${m}.lora_A.weight`),
    B: get(params, `${m}.lora_B.weight`),
    r: lora.r,
    s: loraScaling(lora),
    mask,
    keepScale: 1 / (1 - lora.dropout),
  };
}

/** The token embedding's adapter (LoRA target `wte`), when the spec has one. */
function embeddingLoraFor(spec: ModelSpec, params: ParamMap) {
  const lora = spec.lora;
  if (!lora || !lora.targets.includes('wte')) return null;
  return {
    A: get(params, EMBEDDING_LORA_A),
    B: get(params, EMBEDDING_LORA_B),
    r: lora.r,
    s: loraScaling(lora),
  };
}

/** Full forward pass; logits per function ('cls', score head) or per token over the vocabulary ('ntp'). */
export function forwardRef(
  spec: ModelSpec,
  params: ParamMap,
  batch: PackedBatch,
  objective: Objective,
): ForwardResult {
  const c = resolveConfig(spec.config);
  const D = c.n_embd;
  const ids = flat(batch.inputIds);
  const pos = flat(batch.positionIds);
  const seg = flat(batch.segmentIds);
  const L = batch.inputIds[0].length;
  const T = ids.length;
  const keyStart = keyStarts(seg, L, spec.mode);
  const wte = get(params, 'transformer.wte.weight');
  const wpe = get(params, 'transformer.wpe.weight');
  let x = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    if (ids[t] < 0 || ids[t] >= c.vocab_size)
      throw new BadInputError(`token id ${ids[t]} at ${t} outside the vocabulary`);
    if (pos[t] < 0 || pos[t] >= c.n_positions)
      throw new BadInputError(`position id ${pos[t]} at ${t} out of range`);
    for (let i = 0; i < D; i++) x[t * D + i] = wte[ids[t] * D + i] + wpe[pos[t] * D + i];
  }
  const embLora = embeddingLoraFor(spec, params);
  if (embLora) {
    // x[t] += s·B·A[:, ids[t]] (PEFT's LoRA Embedding; A [r, V], B [D, r])
    const { A, B, r, s } = embLora;
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < D; i++) {
        let sum = 0;
        for (let k = 0; k < r; k++) sum += B[i * r + k] * A[k * c.vocab_size + ids[t]];
        x[t * D + i] += s * sum;
      }
    }
  }
  const blocks: BlockCache[] = [];
  for (let l = 0; l < c.n_layer; l++) {
    const p = blockPrefix(l);
    const ln1 = layerNorm(
      x,
      get(params, `${p}.ln_1.weight`),
      get(params, `${p}.ln_1.bias`),
      T,
      D,
      c.layer_norm_epsilon,
    );
    const [qo, qi] = linearShape(c, 'attn.c_attn');
    const cAttn = linear(
      ln1.y,
      T,
      qi,
      qo,
      get(params, `${p}.attn.c_attn.weight`),
      get(params, `${p}.attn.c_attn.bias`),
      loraFor(spec, params, l, 'attn.c_attn', T),
    );
    const att = attention(c, cAttn.y, T, seg, keyStart);
    const attnProj = linear(
      att.out,
      T,
      D,
      D,
      get(params, `${p}.attn.c_proj.weight`),
      get(params, `${p}.attn.c_proj.bias`),
      loraFor(spec, params, l, 'attn.c_proj', T),
    );
    const mid = new Float64Array(T * D);
    for (let i = 0; i < T * D; i++) mid[i] = x[i] + attnProj.y[i];
    const ln2 = layerNorm(
      mid,
      get(params, `${p}.ln_2.weight`),
      get(params, `${p}.ln_2.bias`),
      T,
      D,
      c.layer_norm_epsilon,
    );
    const cFc = linear(
      ln2.y,
      T,
      D,
      c.n_inner,
      get(params, `${p}.mlp.c_fc.weight`),
      get(params, `${p}.mlp.c_fc.bias`),
      loraFor(spec, params, l, 'mlp.c_fc', T),
    );
    const act = new Float64Array(T * c.n_inner);
    for (let i = 0; i < act.length; i++) act[i] = geluRef(cFc.y[i], c.activation_function);
    const mlpProj = linear(
      act,
      T,
      c.n_inner,
      D,
      get(params, `${p}.mlp.c_proj.weight`),
      get(params, `${p}.mlp.c_proj.bias`),
      loraFor(spec, params, l, 'mlp.c_proj', T),
    );
    const next = new Float64Array(T * D);
    for (let i = 0; i < T * D; i++) next[i] = mid[i] + mlpProj.y[i];
    blocks.push({
      ln1: ln1.cache,
      cAttn: cAttn.cache,
      qkv: cAttn.y,
      probs: att.probs,
      attnProj: attnProj.cache,
      ln2: ln2.cache,
      cFc: cFc.cache,
      pre: cFc.y,
      mlpProj: mlpProj.cache,
    });
    x = next;
  }
  const lnF = layerNorm(
    x,
    get(params, 'transformer.ln_f.weight'),
    get(params, 'transformer.ln_f.bias'),
    T,
    D,
    c.layer_norm_epsilon,
  );
  const hidden = lnF.y;
  const lastRows = new Int32Array(batch.functions.map((f) => f.pack * L + f.last));
  let logits: Float64Array;
  if (objective === 'cls') {
    const score = get(params, 'score.weight');
    logits = new Float64Array(lastRows.length * 2);
    lastRows.forEach((row, f) => {
      for (let j = 0; j < 2; j++) {
        let s = 0;
        for (let i = 0; i < D; i++) s += hidden[row * D + i] * score[j * D + i];
        logits[f * 2 + j] = s;
      }
    });
  } else {
    logits = linear(hidden, T, D, c.vocab_size, wte, null, null).y;
  }
  return {
    hidden,
    logits,
    cache: { c, T, ids, pos, seg, keyStart, blocks, lnF: lnF.cache, hidden, lastRows, objective },
  };
}

/** Zero gradients for every parameter in `params` (base, LoRA and score). */
function zeroGrads(params: ParamMap): ParamMap {
  const grads: ParamMap = new Map();
  for (const [name, v] of params) grads.set(name, new Float64Array(v.length));
  return grads;
}

/** Backward pass from dLoss/dlogits: gradients of every parameter in `params`. */
export function backwardRef(
  spec: ModelSpec,
  params: ParamMap,
  cache: ForwardCache,
  dlogits: Float64Array,
): ParamMap {
  const { c, T, ids, pos, blocks, hidden, lastRows } = cache;
  const D = c.n_embd;
  const grads = zeroGrads(params);
  const g = (name: string): Float64Array => get(grads, name);
  let dx: Float64Array = new Float64Array(T * D);
  if (cache.objective === 'cls') {
    const score = get(params, 'score.weight');
    const dscore = g('score.weight');
    lastRows.forEach((row, f) => {
      for (let j = 0; j < 2; j++) {
        const d = dlogits[f * 2 + j];
        for (let i = 0; i < D; i++) {
          dscore[j * D + i] += d * hidden[row * D + i];
          dx[row * D + i] += d * score[j * D + i];
        }
      }
    });
  } else {
    const wte = get(params, 'transformer.wte.weight');
    dx = linearBackward(
      dlogits,
      { x: hidden, xa: null },
      T,
      D,
      c.vocab_size,
      wte,
      { dW: g('transformer.wte.weight'), db: null },
      null,
    );
  }
  dx = layerNormBackward(
    dx,
    cache.lnF,
    get(params, 'transformer.ln_f.weight'),
    g('transformer.ln_f.weight'),
    g('transformer.ln_f.bias'),
    T,
    D,
  );
  const loraGrads = (l: number, t: LinearTarget) => {
    const base = loraFor(spec, params, l, t, T);
    if (!base) return null;
    const m = `${blockPrefix(l)}.${t}`;
    return { ...base, dA: g(`${m}.lora_A.weight`), dB: g(`${m}.lora_B.weight`) };
  };
  for (let l = c.n_layer - 1; l >= 0; l--) {
    const p = blockPrefix(l);
    const b = blocks[l];
    const lin = (t: LinearTarget) => ({
      W: get(params, `${p}.${t}.weight`),
      grads: { dW: g(`${p}.${t}.weight`), db: g(`${p}.${t}.bias`) },
    });
    // MLP branch: next = mid + c_proj(gelu(c_fc(ln_2(mid)))).
    let mp = lin('mlp.c_proj');
    const dact = linearBackward(dx, b.mlpProj, T, c.n_inner, D, mp.W, mp.grads, loraGrads(l, 'mlp.c_proj'));
    const dpre = new Float64Array(dact.length);
    for (let i = 0; i < dact.length; i++) dpre[i] = dact[i] * geluGradRef(b.pre[i], c.activation_function);
    mp = lin('mlp.c_fc');
    const dln2 = linearBackward(dpre, b.cFc, T, D, c.n_inner, mp.W, mp.grads, loraGrads(l, 'mlp.c_fc'));
    const dmidBranch = layerNormBackward(
      dln2,
      b.ln2,
      get(params, `${p}.ln_2.weight`),
      g(`${p}.ln_2.weight`),
      g(`${p}.ln_2.bias`),
      T,
      D,
    );
    const dmid = new Float64Array(T * D);
    for (let i = 0; i < dmid.length; i++) dmid[i] = dx[i] + dmidBranch[i];
    // Attention branch: mid = x + c_proj(attn(c_attn(ln_1(x)))).
    mp = lin('attn.c_proj');
    const datt = linearBackward(dmid, b.attnProj, T, D, D, mp.W, mp.grads, loraGrads(l, 'attn.c_proj'));
    const dqkv = attentionBackward(c, b.qkv, b.probs, datt, T, cache.keyStart);
    mp = lin('attn.c_attn');
    const dln1 = linearBackward(dqkv, b.cAttn, T, D, c.qkvDim, mp.W, mp.grads, loraGrads(l, 'attn.c_attn'));
    const dxBranch = layerNormBackward(
      dln1,
      b.ln1,
      get(params, `${p}.ln_1.weight`),
      g(`${p}.ln_1.weight`),
      g(`${p}.ln_1.bias`),
      T,
      D,
    );
    dx = new Float64Array(T * D);
    for (let i = 0; i < dx.length; i++) dx[i] = dmid[i] + dxBranch[i];
  }
  const dwte = g('transformer.wte.weight');
  const dwpe = g('transformer.wpe.weight');
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < D; i++) {
      dwte[ids[t] * D + i] += dx[t * D + i];
      dwpe[pos[t] * D + i] += dx[t * D + i];
    }
  }
  const embLora = embeddingLoraFor(spec, params);
  if (embLora) {
    const { A, B, r, s } = embLora;
    const V = c.vocab_size;
    const dA = g(EMBEDDING_LORA_A);
    const dB = g(EMBEDDING_LORA_B);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < D; i++) {
        const d = s * dx[t * D + i];
        for (let k = 0; k < r; k++) {
          dB[i * r + k] += d * A[k * V + ids[t]];
          dA[k * V + ids[t]] += d * B[i * r + k];
        }
      }
    }
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
  return crossEntropyRef(logits, targets, resolveConfig(spec.config).vocab_size);
}

/** Loss only (for finite differences). */
export function lossRef(spec: ModelSpec, params: ParamMap, batch: PackedBatch, options: LossOptions): number {
  const fwd = forwardRef(spec, params, batch, options.objective);
  return lossFromLogits(spec, batch, fwd.logits, options).loss;
}

/** Global L2 norm of the gradients (in the order given). */
export function globalNorm(grads: Iterable<ArrayLike<number>>): number {
  let sum = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  return Math.sqrt(sum);
}

/** torch.nn.utils.clip_grad_norm_: scales in place by min(1, max/(norm + 1e-6)); returns the norm. */
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
  const [b1, b2] = o.betas;
  const bc1 = 1 - b1 ** state.step;
  const bc2 = 1 - b2 ** state.step;
  const stepSize = o.lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  for (const name of names) {
    const p = get(params, name);
    const gr = get(grads, name);
    let m = state.m.get(name);
    let v = state.v.get(name);
    if (!m || !v) {
      m = new Float64Array(p.length);
      v = new Float64Array(p.length);
      state.m.set(name, m);
      state.v.set(name, v);
    }
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - o.lr * o.weight_decay;
      m[i] = b1 * m[i] + (1 - b1) * gr[i];
      v[i] = b2 * v[i] + (1 - b2) * gr[i] * gr[i];
      p[i] -= (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + o.eps);
    }
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

/** Names the model reads, in LoRA order, for a spec (useful to build parameter maps). */
export function loraNames(spec: ModelSpec): string[] {
  const names: string[] = [];
  const c = resolveConfig(spec.config);
  if (!spec.lora) return names;
  for (let l = 0; l < c.n_layer; l++) {
    for (const t of LINEAR_TARGETS) {
      if (!spec.lora.targets.includes(t)) continue;
      names.push(`${blockPrefix(l)}.${t}.lora_A.weight`, `${blockPrefix(l)}.${t}.lora_B.weight`);
    }
  }
  if (spec.lora.targets.includes('wte')) names.push(EMBEDDING_LORA_A, EMBEDDING_LORA_B);
  return names;
}
