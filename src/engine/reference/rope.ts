/**
 * Rotary position embedding (RoPE), the float64 CPU reference of shaders/rope.wgsl, and the shape and
 * layout arithmetic the kernel (src/engine/kernels/rope.ts) shares with it.
 *
 * Semantics of Hugging Face `LlamaRotaryEmbedding` + `apply_rotary_pos_emb` ("rotate_half": element i
 * of a head pairs with element i + d/2, not with its neighbour), as Llama, Qwen2 and StarCoder2 use it:
 *
 *   inv_freq[i] = 1 / (s · θ^(2i/d))            i < d/2; s the linear `rope_scaling` factor (1 for none)
 *   a_i         = pos · inv_freq[i]              pos: the token's position id (not its index in the batch)
 *   out[i]       = v[i]·cos a_i − v[i + d/2]·sin a_i
 *   out[i + d/2] = v[i + d/2]·cos a_i + v[i]·sin a_i
 *
 * for every Q head and every K head of the token; V is not touched. Linear scaling is folded into
 * inv_freq (pos/s · f = pos · f/s), as current Hugging Face does (`inv_freq /= factor`).
 *
 * The op is linear and orthogonal per pair (a 2-D rotation R(a)), so the backward is the transpose:
 * dv = R(−a)·dout, the same formula with sin negated, and rope_backward(rope(v)) = v.
 *
 * Layout: one row of `rowStride` floats per token (the fused c_attn / qkv output); Q head h starts at
 * column qOffset + h·qHeadStride, K head g at kOffset + g·kHeadStride. `ropeQkvLayout` gives the two
 * layouts in use: 'grouped' [Q heads | K heads | V heads] (multi-query with 1 KV head, which is
 * GPT-BigCode's multi_query layout [Q | K | V]; grouped-query; multi-head) and 'interleaved', GPT-BigCode's
 * multi-head layout [q₀ k₀ v₀ | q₁ k₁ v₁ | …] (shaders/attention.wgsl q_index / k_index).
 */
import { ShapeError } from '../errors.ts';

export interface QkvLayout {
  /** Floats per token row. */
  rowStride: number;
  /** Column of Q head 0, and floats from one Q head to the next. */
  qOffset: number;
  qHeadStride: number;
  /** Column of K head 0, and floats from one K head to the next. */
  kOffset: number;
  kHeadStride: number;
}

export interface RopeShape {
  /** Tokens (rows). */
  T: number;
  /** Query heads. */
  nHead: number;
  /** Key (and value) heads: 1 (multi-query) … nHead (multi-head), dividing nHead (grouped-query). */
  nKvHead: number;
  /** Head dimension d (even). */
  headDim: number;
  layout: QkvLayout;
}

export interface RopeOptions {
  /** rope_theta (base): 10000 for Llama, 1e6 for Qwen2, 1e5 for StarCoder2. */
  theta: number;
  /** Linear rope_scaling factor s (positions are divided by it); default 1. */
  scaling?: number;
}

/** 'grouped': [Q heads | K heads | V heads]; 'interleaved': GPT-BigCode multi-head [q k v] per head. */
export type QkvLayoutKind = 'grouped' | 'interleaved';

/** The row layout of a fused qkv buffer (see the module comment). */
export function ropeQkvLayout(
  kind: QkvLayoutKind,
  nHead: number,
  nKvHead: number,
  headDim: number,
): QkvLayout {
  if (kind === 'interleaved') {
    if (nKvHead !== nHead) {
      throw new ShapeError(
        `rope: the interleaved qkv layout needs n_kv_head = n_head, got ${nKvHead}, ${nHead}`,
      );
    }
    return {
      rowStride: 3 * nHead * headDim,
      qOffset: 0,
      qHeadStride: 3 * headDim,
      kOffset: headDim,
      kHeadStride: 3 * headDim,
    };
  }
  return {
    rowStride: (nHead + 2 * nKvHead) * headDim,
    qOffset: 0,
    qHeadStride: headDim,
    kOffset: nHead * headDim,
    kHeadStride: headDim,
  };
}

const isCount = (v: number, min: number): boolean => Number.isInteger(v) && v >= min;

/**
 * Throws a ShapeError unless the shape is one the op is defined for: d even, 1 ≤ n_kv_head ≤ n_head
 * dividing it, and every Q and K head inside the row and disjoint from the others (the op works in
 * place: an overlap would rotate some elements twice).
 */
export function checkRopeShape(shape: RopeShape): void {
  const { T, nHead, nKvHead, headDim, layout } = shape;
  for (const [name, v] of Object.entries({ T, nHead, nKvHead, headDim })) {
    if (!isCount(v, name === 'T' ? 0 : 1)) throw new ShapeError(`rope: bad ${name} = ${v}`);
  }
  if (headDim % 2 !== 0) throw new ShapeError(`rope: head_dim must be even, got ${headDim}`);
  if (nKvHead > nHead || nHead % nKvHead !== 0) {
    throw new ShapeError(`rope: n_kv_head ${nKvHead} must divide n_head ${nHead}`);
  }
  const { rowStride, qOffset, qHeadStride, kOffset, kHeadStride } = layout;
  for (const [name, v] of Object.entries({ rowStride, qOffset, qHeadStride, kOffset, kHeadStride })) {
    if (!isCount(v, 0)) throw new ShapeError(`rope: bad layout ${name} = ${v}`);
  }
  const heads: [number, string][] = [];
  for (let h = 0; h < nHead; h++) heads.push([qOffset + h * qHeadStride, `Q head ${h}`]);
  for (let g = 0; g < nKvHead; g++) heads.push([kOffset + g * kHeadStride, `K head ${g}`]);
  heads.sort((a, b) => a[0] - b[0]);
  for (let i = 0; i < heads.length; i++) {
    const [start, name] = heads[i];
    if (start + headDim > rowStride) {
      throw new ShapeError(
        `rope: ${name} (columns ${start}..${start + headDim}) outside the row of ${rowStride}`,
      );
    }
    if (i > 0 && heads[i - 1][0] + headDim > start) {
      throw new ShapeError(`rope: ${heads[i - 1][1]} and ${name} overlap in the qkv row`);
    }
  }
}

/** Throws a ShapeError unless θ and s are finite and positive. */
export function checkRopeOptions({ theta, scaling = 1 }: RopeOptions): void {
  if (!(Number.isFinite(theta) && theta > 0)) throw new ShapeError(`rope: bad rope_theta ${theta}`);
  if (!(Number.isFinite(scaling) && scaling > 0))
    throw new ShapeError(`rope: bad rope_scaling factor ${scaling}`);
}

/** inv_freq[i] = 1 / (s · θ^(2i/d)), i < d/2, in float64 (the kernel uploads it rounded to f32). */
export function ropeInvFreq(headDim: number, options: RopeOptions): Float64Array {
  checkRopeOptions(options);
  const { theta, scaling = 1 } = options;
  return Float64Array.from({ length: headDim / 2 }, (_, i) => 1 / (scaling * theta ** ((2 * i) / headDim)));
}

export interface RopeRefOptions {
  /**
   * Round the angle as the kernel (and Hugging Face) does: a = f32(f32(pos) · f32(inv_freq)), then
   * cos/sin in float64. Isolates the kernel's own error (range reduction, polynomials, the rotation)
   * from the rounding of the angle itself, which grows with the position.
   */
  f32Angles?: boolean;
}

/** Rotates every Q and K head of `x` (a copy) by +a (sign 1, forward) or −a (sign −1, backward). */
function rotate(
  x: ArrayLike<number>,
  pos: ArrayLike<number>,
  shape: RopeShape,
  options: RopeOptions,
  sign: 1 | -1,
  refOptions: RopeRefOptions,
): Float64Array {
  checkRopeShape(shape);
  const { T, nHead, nKvHead, headDim, layout } = shape;
  if (x.length !== T * layout.rowStride || pos.length !== T) {
    throw new ShapeError(
      `rope: expected ${T * layout.rowStride} values and ${T} positions, got ${x.length}, ${pos.length}`,
    );
  }
  const half = headDim / 2;
  const invFreq = ropeInvFreq(headDim, options);
  const out = Float64Array.from(x);
  const starts: number[] = [];
  for (let h = 0; h < nHead; h++) starts.push(layout.qOffset + h * layout.qHeadStride);
  for (let g = 0; g < nKvHead; g++) starts.push(layout.kOffset + g * layout.kHeadStride);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const a = refOptions.f32Angles
        ? Math.fround(Math.fround(pos[t]) * Math.fround(invFreq[i]))
        : pos[t] * invFreq[i];
      const c = Math.cos(a);
      const s = sign * Math.sin(a);
      for (const start of starts) {
        const j = t * layout.rowStride + start + i;
        const v0 = x[j];
        const v1 = x[j + half];
        out[j] = v0 * c - v1 * s;
        out[j + half] = v1 * c + v0 * s;
      }
    }
  }
  return out;
}

/** Forward: the qkv rows [T, rowStride] with every Q and K head rotated (V and other columns copied). */
export function ropeForwardRef(
  qkv: ArrayLike<number>,
  pos: ArrayLike<number>,
  shape: RopeShape,
  options: RopeOptions,
  refOptions: RopeRefOptions = {},
): Float64Array {
  return rotate(qkv, pos, shape, options, 1, refOptions);
}

/** Backward: d(qkv) from the gradient of the rotated rows, the transpose rotation R(−a) (dV copied). */
export function ropeBackwardRef(
  dOut: ArrayLike<number>,
  pos: ArrayLike<number>,
  shape: RopeShape,
  options: RopeOptions,
  refOptions: RopeRefOptions = {},
): Float64Array {
  return rotate(dOut, pos, shape, options, -1, refOptions);
}
