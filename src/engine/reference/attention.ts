/**
 * Attention masks for packed batches and the float64 CPU reference of shaders/attention.wgsl and
 * shaders/attention_flash.wgsl (the 'cpu' and 'gpu' kernel sets; causal self-attention on the fused
 * qkv projection, forward and backward).
 *
 * Masking: every token t of the flattened batch [T] has `segment[t]` (−1 = padding) and
 * `keyStart[t]`; a non-padding query t attends to keys k with keyStart[t] ≤ k ≤ t and
 * segment[k] ≠ −1. Padding queries output zeros and get zero gradients. `queryEnd[k]` is one past
 * the last query that may attend to key k (an upper bound is enough for correctness; the kernels use
 * it to skip query tiles in the key-side backward pass). A sliding window (StarCoder2, Mistral) only
 * tightens the two ranges, so the kernels need nothing else for it (see buildAttentionMask).
 *
 * Heads: query head h reads K/V head ⌊h / (nHead / kvHeads)⌋ (Hugging Face `repeat_kv`); its dK and
 * dV sum over the query heads sharing it.
 */
import { ShapeError } from '../errors.ts';
import type { AttentionMode } from '../../shared/batch.ts';
import { attentionKvHeads } from '../model/sizes.ts';

export type { AttentionMode } from '../../shared/batch.ts';

export interface AttentionMask {
  T: number;
  /** Function index within the pack, −1 for padding. */
  segment: Int32Array;
  /** First key (index in the flattened T) that query t may attend to. */
  keyStart: Int32Array;
  /** One past the last query (flattened T) that may attend to key k; k itself for padding keys. */
  queryEnd: Int32Array;
}

export interface AttentionShape {
  /** Number of query heads. */
  nHead: number;
  /** head_dim = n_embd / n_head. */
  headDim: number;
  /**
   * true: c_attn rows are [Q (n_embd) | K (hd) | V (hd)] (one K/V head); false without kvHeads:
   * GPT-BigCode's multi-head [n_head, 3, hd] interleaving.
   */
  multiQuery: boolean;
  /**
   * Grouped-query attention (Llama, Qwen2, StarCoder2): kvHeads K/V heads, dividing nHead, rows
   * [Q (nHead·hd) | K (kvHeads·hd) | V (kvHeads·hd)]. 1 is multi-query, nHead multi-head in this
   * layout. Needs multiQuery false (or kvHeads 1).
   */
  kvHeads?: number;
}

/**
 * Builds the mask of `segmentIds` (flattened [packs × packLength]).
 * packed: a token sees earlier tokens of its own segment (segments must be contiguous runs in a pack);
 * paper: a token sees every earlier non-padding token of its pack.
 * slidingWindow w (StarCoder2 / Mistral `sliding_window`): query t also sees only keys k with
 * t − w < k ≤ t, i.e. at most w keys counting itself, as current Hugging Face masks it
 * (masking_utils `sliding_window_overlay`: kv_idx > q_idx − sliding_window; some older releases'
 * `_make_causal_mask` let w + 1 keys in). So key_start[t] = max(start, t − w + 1) and
 * query_end[k] = min(end, k + w).
 */
export function buildAttentionMask(
  segmentIds: ArrayLike<number>,
  packLength: number,
  mode: AttentionMode,
  slidingWindow?: number,
): AttentionMask {
  const T = segmentIds.length;
  if (!Number.isInteger(packLength) || packLength < 1 || T % packLength !== 0) {
    throw new ShapeError(`attention mask: ${T} tokens are not a whole number of packs of ${packLength}`);
  }
  const w = slidingWindow ?? T + 1;
  if (!Number.isInteger(w) || w < 1) {
    throw new ShapeError(`attention mask: sliding window ${slidingWindow} must be a positive integer`);
  }
  const segment = Int32Array.from(segmentIds);
  const keyStart = new Int32Array(T);
  const queryEnd = new Int32Array(T);
  for (let p0 = 0; p0 < T; p0 += packLength) {
    const p1 = p0 + packLength;
    if (mode === 'paper') {
      let lastValid = -1;
      for (let t = p0; t < p1; t++) if (segment[t] !== -1) lastValid = t;
      for (let t = p0; t < p1; t++) {
        const pad = segment[t] === -1;
        keyStart[t] = pad ? t : Math.max(p0, t - w + 1);
        queryEnd[t] = pad ? t : Math.min(lastValid + 1, t + w);
      }
      continue;
    }
    const seen = new Set<number>();
    let t = p0;
    while (t < p1) {
      const id = segment[t];
      let end = t + 1;
      while (end < p1 && segment[end] === id) end++;
      if (id === -1) {
        for (let u = t; u < end; u++) {
          keyStart[u] = u;
          queryEnd[u] = u;
        }
      } else {
        if (seen.has(id)) {
          throw new ShapeError(`attention mask: segment ${id} of pack ${p0 / packLength} is not contiguous`);
        }
        seen.add(id);
        for (let u = t; u < end; u++) {
          keyStart[u] = Math.max(t, u - w + 1);
          queryEnd[u] = Math.min(end, u + w);
        }
      }
      t = end;
    }
  }
  return { T, segment, keyStart, queryEnd };
}

/**
 * Checks what the kernels rely on: 0 ≤ key_start[t] ≤ t for non-padding queries, and query_end[k]
 * bounding every query that attends to key k (the dK/dV pass visits only queries below it).
 */
export function validateAttentionMask(mask: AttentionMask): void {
  const { T, segment, keyStart, queryEnd } = mask;
  if (segment.length !== T || keyStart.length !== T || queryEnd.length !== T) {
    throw new ShapeError('attention mask: arrays must all have length T');
  }
  // The last query attending to key k is the largest non-padding t with keyStart[t] ≤ k ≤ t. Visit
  // queries from the last one down and give each still-unassigned key of [keyStart[t], t] to t; `left`
  // (union-find with path halving) skips keys already assigned, so this is O(T·α(T)).
  const left = new Int32Array(T);
  for (let k = 0; k < T; k++) left[k] = k;
  const find = (k: number): number => {
    while (k >= 0 && left[k] !== k) {
      const up = left[k];
      if (up >= 0) left[k] = left[up];
      k = up;
    }
    return k;
  };
  for (let t = T - 1; t >= 0; t--) {
    if (segment[t] === -1) continue;
    const start = keyStart[t];
    if (!(Number.isInteger(start) && start >= 0 && start <= t)) {
      throw new ShapeError(`attention mask: key_start[${t}] = ${start} is outside [0, ${t}]`);
    }
    for (let k = find(t); k >= start; k = find(k)) {
      if (segment[k] !== -1 && queryEnd[k] < t + 1) {
        throw new ShapeError(`attention mask: query_end[${k}] = ${queryEnd[k]} but query ${t} attends to it`);
      }
      left[k] = k - 1;
    }
  }
}

/** The mask as the kernels read it: vec4<i32> per token = (segment, keyStart, queryEnd, 0). */
export function maskBufferData(mask: AttentionMask): Int32Array {
  const data = new Int32Array(mask.T * 4);
  for (let t = 0; t < mask.T; t++) {
    data[4 * t] = mask.segment[t];
    data[4 * t + 1] = mask.keyStart[t];
    data[4 * t + 2] = mask.queryEnd[t];
  }
  return data;
}

/** Whether query t attends to key k. */
export function attends(mask: AttentionMask, t: number, k: number): boolean {
  return mask.segment[t] !== -1 && mask.segment[k] !== -1 && k >= mask.keyStart[t] && k <= t;
}

/** Columns of one c_attn row: width and offsets of q, k and v for query head h. */
export function qkvLayout(shape: AttentionShape): {
  width: number;
  q: (h: number) => number;
  k: (h: number) => number;
  v: (h: number) => number;
} {
  const { nHead, headDim: hd } = shape;
  const D = nHead * hd;
  const kv = attentionKvHeads(shape);
  if (kv > 0) {
    const group = nHead / kv;
    const kvHead = (h: number): number => Math.floor(h / group);
    return {
      width: D + 2 * kv * hd,
      q: (h) => h * hd,
      k: (h) => D + kvHead(h) * hd,
      v: (h) => D + (kv + kvHead(h)) * hd,
    };
  }
  return {
    width: 3 * D,
    q: (h) => h * 3 * hd,
    k: (h) => h * 3 * hd + hd,
    v: (h) => h * 3 * hd + 2 * hd,
  };
}

function checkSizes(qkv: ArrayLike<number>, mask: AttentionMask, shape: AttentionShape): number {
  const { width } = qkvLayout(shape);
  if (qkv.length !== mask.T * width) {
    throw new ShapeError(`attention: qkv has ${qkv.length} values, expected T·${width} = ${mask.T * width}`);
  }
  return width;
}

/** Forward: out [T, D] (heads contiguous) and logsumexp of the scaled scores [T, n_head] (0 for padding). */
export function attentionForwardRef(
  qkv: ArrayLike<number>,
  mask: AttentionMask,
  shape: AttentionShape,
): { out: Float64Array; lse: Float64Array } {
  const { nHead: H, headDim: hd } = shape;
  const width = checkSizes(qkv, mask, shape);
  const lay = qkvLayout(shape);
  const { T } = mask;
  const D = H * hd;
  const scale = 1 / Math.sqrt(hd);
  const out = new Float64Array(T * D);
  const lse = new Float64Array(T * H);
  const scores = new Float64Array(T);
  for (let h = 0; h < H; h++) {
    for (let t = 0; t < T; t++) {
      if (mask.segment[t] === -1) continue;
      let max = -Infinity;
      for (let k = 0; k < T; k++) {
        if (!attends(mask, t, k)) continue;
        let s = 0;
        for (let d = 0; d < hd; d++) s += qkv[t * width + lay.q(h) + d] * qkv[k * width + lay.k(h) + d];
        scores[k] = s * scale;
        max = Math.max(max, scores[k]);
      }
      let sum = 0;
      for (let k = 0; k < T; k++) if (attends(mask, t, k)) sum += Math.exp(scores[k] - max);
      for (let k = 0; k < T; k++) {
        if (!attends(mask, t, k)) continue;
        const p = Math.exp(scores[k] - max) / sum;
        for (let d = 0; d < hd; d++) out[t * D + h * hd + d] += p * qkv[k * width + lay.v(h) + d];
      }
      lse[t * H + h] = max + Math.log(sum);
    }
  }
  return { out, lse };
}

/**
 * Backward: d(qkv) in the layout of qkv from dOut [T, D]. Probabilities are recomputed here from
 * scratch (not from a saved logsumexp) so the reference does not share the kernel's shortcut.
 * Shared K/V heads (multi-query, grouped-query): dK and dV sum over the heads sharing them.
 */
export function attentionBackwardRef(
  qkv: ArrayLike<number>,
  dOut: ArrayLike<number>,
  mask: AttentionMask,
  shape: AttentionShape,
): Float64Array {
  const { nHead: H, headDim: hd } = shape;
  const width = checkSizes(qkv, mask, shape);
  const lay = qkvLayout(shape);
  const { T } = mask;
  const D = H * hd;
  const scale = 1 / Math.sqrt(hd);
  const dqkv = new Float64Array(T * width);
  const p = new Float64Array(T);
  const dp = new Float64Array(T);
  for (let h = 0; h < H; h++) {
    const qo = lay.q(h);
    const ko = lay.k(h);
    const vo = lay.v(h);
    for (let t = 0; t < T; t++) {
      if (mask.segment[t] === -1) continue;
      let max = -Infinity;
      for (let k = 0; k < T; k++) {
        if (!attends(mask, t, k)) continue;
        let s = 0;
        for (let d = 0; d < hd; d++) s += qkv[t * width + qo + d] * qkv[k * width + ko + d];
        p[k] = s * scale;
        max = Math.max(max, p[k]);
      }
      let sum = 0;
      for (let k = 0; k < T; k++) if (attends(mask, t, k)) sum += Math.exp(p[k] - max);
      // p = softmax, dp = dOut_t · v_k, then dS = p (dp − Σ p·dp).
      let dot = 0;
      for (let k = 0; k < T; k++) {
        if (!attends(mask, t, k)) continue;
        p[k] = Math.exp(p[k] - max) / sum;
        let g = 0;
        for (let d = 0; d < hd; d++) g += dOut[t * D + h * hd + d] * qkv[k * width + vo + d];
        dp[k] = g;
        dot += p[k] * g;
      }
      for (let k = 0; k < T; k++) {
        if (!attends(mask, t, k)) continue;
        const ds = p[k] * (dp[k] - dot) * scale;
        for (let d = 0; d < hd; d++) {
          dqkv[t * width + qo + d] += ds * qkv[k * width + ko + d];
          dqkv[k * width + ko + d] += ds * qkv[t * width + qo + d];
          dqkv[k * width + vo + d] += p[k] * dOut[t * D + h * hd + d];
        }
      }
    }
  }
  return dqkv;
}

export interface AttentionWork {
  /** (query, key) pairs that are actually unmasked: Σ over segments of len·(len+1)/2 in packed mode. */
  validPairs: number;
  /** Score entries the forward kernel computes (visited tiles × tile²), per head. */
  visitedPairs: number;
  /** Key tiles visited by all query tiles (forward and dQ pass), per head. */
  forwardTiles: number;
  /** Query tiles visited by all key tiles (dK/dV pass), per head. */
  keySideTiles: number;
  /** Forward FLOPs of the kernel over all heads: 2·hd for QKᵀ and 2·hd for P·V per visited pair. */
  flopsForward: number;
  /** Backward FLOPs over all heads: dQ pass 6·hd (QKᵀ, dO·Vᵀ, dS·K), dK/dV pass 8·hd per visited pair. */
  flopsBackward: number;
  /** Forward FLOPs if only the valid pairs were computed (the ideal Σ len² cost). */
  idealFlopsForward: number;
}

/**
 * Work the kernels do for `mask` (mirrors the tile-skipping in shaders/attention.wgsl): compare packed
 * (this mask) against padded (one function per pack) or dense causal masks for the benchmark.
 */
export function attentionWork(mask: AttentionMask, shape: AttentionShape, tile = 16): AttentionWork {
  const { T, segment, keyStart, queryEnd } = mask;
  let validPairs = 0;
  for (let t = 0; t < T; t++) if (segment[t] !== -1) validPairs += t - keyStart[t] + 1;
  let forwardTiles = 0;
  for (let q0 = 0; q0 < T; q0 += tile) {
    const [lo, hi] = queryTileKeyRange(mask, q0, tile);
    if (hi >= lo) forwardTiles += Math.ceil((hi - lo + 1) / tile);
  }
  let keySideTiles = 0;
  for (let k0 = 0; k0 < T; k0 += tile) {
    let lo = T;
    let hi = -1;
    for (let k = k0; k < Math.min(k0 + tile, T); k++) {
      if (segment[k] === -1) continue;
      lo = Math.min(lo, k);
      hi = Math.max(hi, queryEnd[k] - 1);
    }
    if (hi >= lo) keySideTiles += Math.ceil((hi - lo + 1) / tile);
  }
  const visitedPairs = forwardTiles * tile * tile;
  const { nHead: H, headDim: hd } = shape;
  return {
    validPairs,
    visitedPairs,
    forwardTiles,
    keySideTiles,
    flopsForward: H * visitedPairs * 4 * hd,
    flopsBackward:
      H * (forwardTiles + keySideTiles) * tile * tile * 4 * hd + H * keySideTiles * tile * tile * 4 * hd,
    idealFlopsForward: H * validPairs * 4 * hd,
  };
}

/** Keys [lo, hi] visited by the query tile starting at q0 (hi < lo: the tile has no non-padding query). */
export function queryTileKeyRange(mask: AttentionMask, q0: number, tile: number): [number, number] {
  let lo = mask.T;
  let hi = -1;
  for (let t = q0; t < Math.min(q0 + tile, mask.T); t++) {
    if (mask.segment[t] === -1) continue;
    lo = Math.min(lo, mask.keyStart[t]);
    hi = t;
  }
  return [lo, hi];
}

/**
 * Segment ids of packs given as function lengths, e.g. [[3, 5], [8]] with packLength 8: pack 0 holds
 * functions 0 and 1, pack 1 one function of 8 tokens; the rest of each pack is padding (−1).
 */
export function segmentIdsFromLengths(packs: readonly (readonly number[])[], packLength: number): Int32Array {
  const ids = new Int32Array(packs.length * packLength).fill(-1);
  packs.forEach((lengths, p) => {
    let t = p * packLength;
    lengths.forEach((len, id) => {
      if (!Number.isInteger(len) || len < 1)
        throw new ShapeError(`segment length ${len} must be a positive integer`);
      if (t + len > (p + 1) * packLength)
        throw new ShapeError(`pack ${p} holds more than ${packLength} tokens`);
      ids.fill(id, t, t + len);
      t += len;
    });
  });
  return ids;
}
