/**
 * Element conversions while streaming tensors: a source dtype (F32/F16/BF16, GGUF Q8_0/Q4_0 blocks)
 * to f32, and f32 to the engine's weight formats. The formats themselves (GGUF-exact quantization,
 * byte layouts) are the engine's (src/engine/quant.ts); this module maps checkpoint dtypes onto them.
 */
import {
  bf16ArrayToF32,
  decodeWeight,
  encodeWeight,
  weightBytes,
  type WeightFormat,
} from '../engine/quant.ts';

export type { WeightFormat };

/** Element types a checkpoint can hold. */
export type SourceDtype = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_0';

/** The weight format whose bytes equal this dtype's (so no conversion is needed), if any. */
export function sameFormat(dtype: SourceDtype): WeightFormat | undefined {
  switch (dtype) {
    case 'F32':
      return 'f32';
    case 'F16':
      return 'f16';
    case 'Q8_0':
      return 'q8_0';
    case 'Q4_0':
      return 'q4_0';
    case 'BF16':
      return undefined;
  }
}

/** Bytes of a [rows, cols] tensor stored as `dtype` (block types: rows padded to whole blocks). */
export function sourceBytes(dtype: SourceDtype, rows: number, cols: number): number {
  return dtype === 'BF16' ? rows * cols * 2 : weightBytes(sameFormat(dtype)!, rows, cols);
}

/** Decodes little-endian source bytes of a [rows, cols] tensor to f32. */
export function toF32(dtype: SourceDtype, bytes: Uint8Array, rows: number, cols: number): Float32Array {
  if (dtype === 'BF16') {
    const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
    return bf16ArrayToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, rows * cols));
  }
  return decodeWeight(sameFormat(dtype)!, rows, cols, bytes);
}

/** Encodes f32 values of a [rows, cols] tensor into a weight format. */
export function fromF32(format: WeightFormat, values: Float32Array, rows: number, cols: number): Uint8Array {
  return encodeWeight(format, rows, cols, values);
}

/** Converts source bytes to a target format; returns the input untouched when the formats agree. */
export function convertTensor(
  dtype: SourceDtype,
  bytes: Uint8Array,
  rows: number,
  cols: number,
  target: WeightFormat,
): Uint8Array {
  if (sameFormat(dtype) === target) return bytes;
  return fromF32(target, toF32(dtype, bytes, rows, cols), rows, cols);
}

export { weightBytes };
