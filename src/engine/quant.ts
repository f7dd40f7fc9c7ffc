/**
 * Weight formats on the CPU (no GPU here): f32 <-> f16 and bf16 -> f32 conversion, and GGUF/ggml
 * block quantization q8_0 and q4_0 (bit-exact with ggml's `quantize_row_q8_0_ref` /
 * `quantize_row_q4_0_ref`), plus the byte layout the GPU kernels (`kernels/linear.ts`) read.
 *
 * Layout of a weight W [rows, cols] (Hugging Face `[out, in]`), row-major, little-endian:
 * - f32: `cols` × 4 bytes per row.
 * - f16: `cols` × 2 bytes per row (IEEE half bits), no padding.
 * - q8_0: per block of 32 weights, f16 scale `d` then 32 × i8 `qs` (34 bytes); weight = qs·d.
 * - q4_0: per block of 32 weights, f16 scale `d` then 16 bytes (18 bytes); byte j holds element j in
 *   its low nibble and element 16 + j in its high nibble; weight = (nibble − 8)·d.
 *
 * Columns that are not a multiple of 32: each row is padded to a whole number of blocks
 * (`ceil(cols / 32)` blocks) with zero weights before quantizing, so every row starts on a block
 * boundary and the padding dequantizes to exactly 0 (q8_0: qs = 0; q4_0: nibble 8). GGUF files
 * never need this (ggml requires cols % 32 == 0 for block types), so GGUF rows are used as they are.
 * A whole tensor is `rows × bytesPerRow` bytes; GPU buffers round that up to a multiple of 4.
 */

export type WeightFormat = 'f32' | 'f16' | 'q8_0' | 'q4_0';

export const WEIGHT_FORMATS: readonly WeightFormat[] = ['f32', 'f16', 'q8_0', 'q4_0'];

/** Weights per quantization block (q8_0 and q4_0). */
export const QK = 32;
export const Q8_0_BLOCK_BYTES = 34;
export const Q4_0_BLOCK_BYTES = 18;

/** Bytes of one row of `cols` weights in `format` (block formats: rows padded to whole blocks). */
export function bytesPerRow(format: WeightFormat, cols: number): number {
  switch (format) {
    case 'f32':
      return cols * 4;
    case 'f16':
      return cols * 2;
    case 'q8_0':
      return Math.ceil(cols / QK) * Q8_0_BLOCK_BYTES;
    case 'q4_0':
      return Math.ceil(cols / QK) * Q4_0_BLOCK_BYTES;
  }
}

/** Bytes of a whole [rows, cols] weight in `format` (not rounded up to 4). */
export function weightBytes(format: WeightFormat, rows: number, cols: number): number {
  return rows * bytesPerRow(format, cols);
}

// ---------------------------------------------------------------------------------------------
// Half precision

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * IEEE binary16 bits of `value`, rounded to nearest, ties to even (as F16C / ggml's
 * GGML_FP32_TO_FP16). Overflow gives ±inf, tiny values give subnormals or ±0, NaN stays NaN
 * (quiet, payload's top bits kept).
 */
export function f32ToF16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: value / 2^-24, rounded. With the implicit bit, value = M · 2^(exp-150).
    const shift = 14 - e; // = 126 - exp >= 14
    if (shift > 24) return sign; // below half the smallest subnormal (M < 2^24)
    mant |= 0x800000;
    let q = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (q & 1) !== 0)) q++;
    return sign | q; // q == 0x400 is the smallest normal, encoded correctly
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // a carry into the exponent is right, up to inf
  return sign | h;
}

/** The value of IEEE binary16 bits `h` (exact). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

let f16Table: Float32Array | undefined;

/** All 65536 half values as f32 (built once, 256 KiB), for bulk conversion. */
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

export function f32ArrayToF16(data: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = f32ToF16(data[i]);
  return out;
}

export function f16ArrayToF32(bits: Uint16Array): Float32Array {
  const table = halfTable();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

/** bfloat16 bits (the top half of an f32) to f32; exact. */
export function bf16ToF32(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0];
}

export function bf16ArrayToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const view = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) view[i] = bits[i] << 16;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Block quantization (ggml reference algorithms, f32 arithmetic reproduced with Math.fround)

const fround = Math.fround;

/** C `roundf`: halfway cases away from zero. */
function roundAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

function checkShape(rows: number, cols: number, length: number, what: string): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new RangeError(`${what}: bad shape [${rows}, ${cols}]`);
  }
  if (length < rows * cols) throw new RangeError(`${what}: ${length} values for [${rows}, ${cols}]`);
}

/** One zero-padded block of row `r`, elements [c0, c0 + 32), into `block`. */
function gatherBlock(
  data: ArrayLike<number>,
  cols: number,
  r: number,
  c0: number,
  block: Float32Array,
): void {
  const base = r * cols;
  for (let j = 0; j < QK; j++) block[j] = c0 + j < cols ? data[base + c0 + j] : 0;
}

/** q8_0 bytes of W [rows, cols] (ggml quantize_row_q8_0_ref, bit-exact). */
export function quantizeQ8_0(rows: number, cols: number, data: ArrayLike<number>): Uint8Array {
  checkShape(rows, cols, data.length, 'quantizeQ8_0');
  const bpr = bytesPerRow('q8_0', cols);
  const out = new Uint8Array(rows * bpr);
  const block = new Float32Array(QK);
  const nb = bpr / Q8_0_BLOCK_BYTES;
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      gatherBlock(data, cols, r, b * QK, block);
      let amax = 0;
      for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(block[j]));
      const d = fround(amax / 127);
      const id = d !== 0 ? fround(1 / d) : 0;
      const o = r * bpr + b * Q8_0_BLOCK_BYTES;
      const dh = f32ToF16(d);
      out[o] = dh & 0xff;
      out[o + 1] = dh >>> 8;
      for (let j = 0; j < QK; j++) out[o + 2 + j] = roundAway(fround(block[j] * id)) & 0xff;
    }
  }
  return out;
}

/** q4_0 bytes of W [rows, cols] (ggml quantize_row_q4_0_ref, bit-exact). */
export function quantizeQ4_0(rows: number, cols: number, data: ArrayLike<number>): Uint8Array {
  checkShape(rows, cols, data.length, 'quantizeQ4_0');
  const bpr = bytesPerRow('q4_0', cols);
  const out = new Uint8Array(rows * bpr);
  const block = new Float32Array(QK);
  const nb = bpr / Q4_0_BLOCK_BYTES;
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      gatherBlock(data, cols, r, b * QK, block);
      // The signed value of largest magnitude (first one on ties) maps to −8.
      let amax = 0;
      let max = 0;
      for (let j = 0; j < QK; j++) {
        if (amax < Math.abs(block[j])) {
          amax = Math.abs(block[j]);
          max = block[j];
        }
      }
      const d = fround(max / -8);
      const id = d !== 0 ? fround(1 / d) : 0;
      const o = r * bpr + b * Q4_0_BLOCK_BYTES;
      const dh = f32ToF16(d);
      out[o] = dh & 0xff;
      out[o + 1] = dh >>> 8;
      for (let j = 0; j < QK / 2; j++) {
        // (int8_t)(x·id + 8.5f) truncates toward zero; then min(15, ·).
        const q0 = Math.min(15, Math.trunc(fround(fround(block[j] * id) + 8.5)));
        const q1 = Math.min(15, Math.trunc(fround(fround(block[j + 16] * id) + 8.5)));
        out[o + 2 + j] = q0 | (q1 << 4);
      }
    }
  }
  return out;
}

function checkBytes(format: WeightFormat, rows: number, cols: number, bytes: Uint8Array, what: string): void {
  const need = weightBytes(format, rows, cols);
  if (bytes.length < need) {
    throw new RangeError(`${what}: ${bytes.length} bytes for ${format} [${rows}, ${cols}] (need ${need})`);
  }
}

export function dequantizeQ8_0(rows: number, cols: number, bytes: Uint8Array): Float32Array {
  checkBytes('q8_0', rows, cols, bytes, 'dequantizeQ8_0');
  const table = halfTable();
  const bpr = bytesPerRow('q8_0', cols);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += QK) {
      const o = r * bpr + (c0 / QK) * Q8_0_BLOCK_BYTES;
      const d = table[bytes[o] | (bytes[o + 1] << 8)];
      const n = Math.min(QK, cols - c0);
      for (let j = 0; j < n; j++) out[r * cols + c0 + j] = ((bytes[o + 2 + j] << 24) >> 24) * d;
    }
  }
  return out;
}

export function dequantizeQ4_0(rows: number, cols: number, bytes: Uint8Array): Float32Array {
  checkBytes('q4_0', rows, cols, bytes, 'dequantizeQ4_0');
  const table = halfTable();
  const bpr = bytesPerRow('q4_0', cols);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += QK) {
      const o = r * bpr + (c0 / QK) * Q4_0_BLOCK_BYTES;
      const d = table[bytes[o] | (bytes[o + 1] << 8)];
      const n = Math.min(QK, cols - c0);
      for (let j = 0; j < n; j++) {
        const byte = bytes[o + 2 + (j & 15)];
        const nibble = j < 16 ? byte & 15 : byte >>> 4;
        out[r * cols + c0 + j] = (nibble - 8) * d;
      }
    }
  }
  return out;
}

/** Bytes of W [rows, cols] (f32 values) in `format`, in the layout the GPU kernels read. */
export function encodeWeight(
  format: WeightFormat,
  rows: number,
  cols: number,
  data: ArrayLike<number>,
): Uint8Array {
  checkShape(rows, cols, data.length, 'encodeWeight');
  switch (format) {
    case 'f32': {
      const out = new Float32Array(rows * cols);
      for (let i = 0; i < rows * cols; i++) out[i] = data[i];
      return new Uint8Array(out.buffer);
    }
    case 'f16': {
      const bits = new Uint16Array(rows * cols);
      for (let i = 0; i < rows * cols; i++) bits[i] = f32ToF16(data[i]);
      return new Uint8Array(bits.buffer);
    }
    case 'q8_0':
      return quantizeQ8_0(rows, cols, data);
    case 'q4_0':
      return quantizeQ4_0(rows, cols, data);
  }
}

/** W [rows, cols] as f32 from its bytes in `format` (exact: every format is a subset of f32). */
export function decodeWeight(
  format: WeightFormat,
  rows: number,
  cols: number,
  bytes: Uint8Array,
): Float32Array {
  checkBytes(format, rows, cols, bytes, 'decodeWeight');
  switch (format) {
    case 'f32':
      return new Float32Array(bytes.slice(0, rows * cols * 4).buffer);
    case 'f16':
      return f16ArrayToF32(new Uint16Array(bytes.slice(0, rows * cols * 2).buffer));
    case 'q8_0':
      return dequantizeQ8_0(rows, cols, bytes);
    case 'q4_0':
      return dequantizeQ4_0(rows, cols, bytes);
  }
}
