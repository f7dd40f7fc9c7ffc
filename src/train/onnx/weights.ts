/**
 * Weights for the ONNX detector: the LoRA update merged into the base weights, and the byte
 * layouts of the four export formats. Linear weights arrive as Hugging Face `[out, in]`.
 *
 * - f32 / f16: the weight transposed to `[in, out]` (the right operand of MatMul).
 * - int8: the lab's q8_0 (ggml bit-exact: 32 weights per block along `in`, one scale, w = q·d) as an
 *   ai.onnx DequantizeLinear-21 blocked tensor: int8 `[in, out]`, float scales `[⌈in/32⌉, out]`,
 *   axis 0, block_size 32, no zero point.
 * - int4: the lab's q4_0 (w = (q − 8)·d) as com.microsoft MatMulNBits bits 4, block 32, no zero points
 *   (the default zero point 8 is q4_0's offset): uint8 `[out, ⌈in/32⌉, 16]`, two codes per byte with
 *   element 2t in the low nibble of byte t and 2t + 1 in the high one (q4_0 pairs t with t + 16),
 *   float scales `[out, ⌈in/32⌉]`.
 * Scales are the f16 scales of q8_0/q4_0 widened to f32, so the dequantized weights are exactly the
 * ones the lab's engine computes with for that format.
 */
import {
  Q4_0_BLOCK_BYTES,
  Q8_0_BLOCK_BYTES,
  QK,
  f16ToF32,
  f32ArrayToF16,
  quantizeQ4_0,
  quantizeQ8_0,
} from '../../engine/quant.ts';

export type OnnxWeightFormat = 'f32' | 'f16' | 'int8' | 'int4';
export const ONNX_WEIGHT_FORMATS: readonly OnnxWeightFormat[] = ['f32', 'f16', 'int8', 'int4'];

/** W + scaling·B·A, accumulated in float64 and rounded once to f32. W [out, in], B [out, r], A [r, in]. */
export function mergeLora(
  weight: ArrayLike<number>,
  out: number,
  inp: number,
  loraA: ArrayLike<number>,
  loraB: ArrayLike<number>,
  r: number,
  scaling: number,
): Float32Array {
  if (weight.length !== out * inp || loraA.length !== r * inp || loraB.length !== out * r) {
    throw new RangeError(
      `mergeLora: shapes do not match (W ${weight.length} for [${out}, ${inp}], A ${loraA.length} for [${r}, ${inp}], B ${loraB.length} for [${out}, ${r}])`,
    );
  }
  const merged = new Float32Array(out * inp);
  const row = new Float64Array(inp);
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let j = 0; j < r; j++) {
      const b = scaling * loraB[o * r + j];
      if (b === 0) continue;
      const a0 = j * inp;
      for (let i = 0; i < inp; i++) row[i] += b * loraA[a0 + i];
    }
    const w0 = o * inp;
    for (let i = 0; i < inp; i++) merged[w0 + i] = weight[w0 + i] + row[i];
  }
  return merged;
}

/** [rows, cols] → [cols, rows]. */
export function transpose(data: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

export const bytesOf = (a: ArrayBufferView): Uint8Array =>
  new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export function toF16Bytes(data: ArrayLike<number>): Uint8Array {
  return bytesOf(f32ArrayToF16(data));
}

export interface BlockInt8 {
  /** int8 [in, out]. */
  values: Int8Array;
  /** f32 [⌈in/32⌉, out]. */
  scales: Float32Array;
}

/** W [out, in] as DequantizeLinear's blocked int8 layout (the q8_0 values, transposed). */
export function toBlockInt8(weight: ArrayLike<number>, out: number, inp: number): BlockInt8 {
  const blocks = Math.ceil(inp / QK);
  const q = quantizeQ8_0(out, inp, weight);
  const values = new Int8Array(inp * out);
  const scales = new Float32Array(blocks * out);
  const scaleBits = new DataView(q.buffer, q.byteOffset, q.byteLength);
  for (let o = 0; o < out; o++) {
    for (let b = 0; b < blocks; b++) {
      const at = (o * blocks + b) * Q8_0_BLOCK_BYTES;
      scales[b * out + o] = f16ToF32(scaleBits.getUint16(at, true));
      for (let j = 0; j < QK; j++) {
        const i = b * QK + j;
        if (i < inp) values[i * out + o] = (q[at + 2 + j] << 24) >> 24;
      }
    }
  }
  return { values, scales };
}

export interface NBits4 {
  /** uint8 [out, ⌈in/32⌉, 16]. */
  packed: Uint8Array;
  /** f32 [out, ⌈in/32⌉]. */
  scales: Float32Array;
  blocks: number;
}

/** W [out, in] as MatMulNBits' 4-bit layout (the q4_0 codes, repacked pairwise). */
export function toNBits4(weight: ArrayLike<number>, out: number, inp: number): NBits4 {
  const blocks = Math.ceil(inp / QK);
  const q = quantizeQ4_0(out, inp, weight);
  const packed = new Uint8Array(out * blocks * (QK / 2));
  const scales = new Float32Array(out * blocks);
  const view = new DataView(q.buffer, q.byteOffset, q.byteLength);
  const code = (at: number, e: number) => (e < 16 ? q[at + 2 + e] & 0x0f : q[at + 2 + e - 16] >> 4);
  for (let o = 0; o < out; o++) {
    for (let b = 0; b < blocks; b++) {
      const at = (o * blocks + b) * Q4_0_BLOCK_BYTES;
      scales[o * blocks + b] = f16ToF32(view.getUint16(at, true));
      const dst = (o * blocks + b) * (QK / 2);
      for (let t = 0; t < QK / 2; t++) packed[dst + t] = code(at, 2 * t) | (code(at, 2 * t + 1) << 4);
    }
  }
  return { packed, scales, blocks };
}
