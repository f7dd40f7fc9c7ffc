import { describe, expect, it } from 'vitest';
import {
  bf16ArrayToF32,
  bf16ToF32,
  bytesPerRow,
  decodeWeight,
  dequantizeQ4_0,
  dequantizeQ8_0,
  encodeWeight,
  f16ArrayToF32,
  f16ToF32,
  f32ArrayToF16,
  f32ToF16,
  quantizeQ4_0,
  quantizeQ8_0,
  WEIGHT_FORMATS,
} from '../../src/engine/quant.ts';
import { Rng } from '../../src/engine/random.ts';

/**
 * Independent oracle for f32 -> f16: the nearest of all finite non-negative halves (found by
 * binary search over their values), ties to the even bit pattern, overflow past 65520 to inf.
 */
const positiveHalves = Array.from({ length: 0x7c00 }, (_, h) => f16ToF32(h));
function oracleF16(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const a = Math.abs(value);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = positiveHalves.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (positiveHalves[mid] <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - positiveHalves[lo];
  const dHi = positiveHalves[hi] - a;
  const h = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return sign | h;
}

describe('f16 / bf16 conversion', () => {
  it('converts known values', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [0.1, 0x2e66],
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [65520, 0x7c00], // halfway to 65536: ties to even = inf
      [1e9, 0x7c00],
      [-Infinity, 0xfc00],
      [Infinity, 0x7c00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // halfway to 0: ties to even
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002], // 1.5 ulp of subnormals: ties to even
      [1023 * 2 ** -24 + 2 ** -25, 0x0400], // rounds up from the largest subnormal into the normals
      [1 + 2 ** -11, 0x3c00], // tie, even stays
      [1 + 3 * 2 ** -11, 0x3c02], // tie, odd rounds up
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above a tie
      [1e-10, 0x0000],
      [-1e-10, 0x8000],
    ];
    for (const [value, bits] of cases) expect([value, f32ToF16(value)]).toEqual([value, bits]);
    const nan = f32ToF16(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
    expect(Number.isNaN(f16ToF32(nan))).toBe(true);
  });

  it('decodes every half exactly and re-encodes it to the same bits', () => {
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
    const all = new Uint16Array(65536).map((_, i) => i);
    const values = f16ArrayToF32(all);
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) {
        expect(Number.isNaN(values[h])).toBe(true);
        continue;
      }
      if (values[h] !== f16ToF32(h) || f32ToF16(values[h]) !== h) {
        throw new Error(`half 0x${h.toString(16)} -> ${values[h]} -> 0x${f32ToF16(values[h]).toString(16)}`);
      }
    }
  });

  it('rounds random f32 values like the nearest-half oracle (ties to even)', () => {
    const rng = new Rng(11);
    const bits = new Uint32Array(1);
    const f = new Float32Array(bits.buffer);
    const inputs: number[] = [];
    for (let i = 0; i < 20000; i++) {
      // Exponents spread across subnormal, normal and overflow ranges of f16.
      f[0] = (rng.next() * 2 - 1) * 2 ** (rng.int(50) - 30);
      inputs.push(f[0]);
      // Exact ties: a half plus half an ulp.
      const h = rng.int(0x7bff);
      const next = f16ToF32(h + 1);
      inputs.push((f16ToF32(h) + next) / 2);
    }
    const got = f32ArrayToF16(inputs);
    for (let i = 0; i < inputs.length; i++) {
      if (got[i] !== oracleF16(Math.fround(inputs[i]))) {
        throw new Error(
          `${inputs[i]}: got 0x${got[i].toString(16)} want 0x${oracleF16(inputs[i]).toString(16)}`,
        );
      }
    }
  });

  it('converts bf16', () => {
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc000)).toBe(-2);
    expect(bf16ToF32(0x7f80)).toBe(Infinity);
    expect(bf16ToF32(0x3e4c)).toBe(Math.fround(0.19921875));
    expect(Array.from(bf16ArrayToF32(new Uint16Array([0x3f80, 0xbf00, 0x0001])))).toEqual([
      1,
      -0.5,
      Math.fround(2 ** -133),
    ]);
  });
});

/** The block j − 16 for j = 0..31: amax 16 (at j = 0, negative). */
const ramp = Float32Array.from({ length: 32 }, (_, j) => j - 16);

describe('q8_0', () => {
  it('quantizes a known block like ggml', () => {
    const bytes = quantizeQ8_0(1, 32, ramp);
    expect(bytes.length).toBe(34);
    const d = Math.fround(16 / 127);
    expect(bytes[0] | (bytes[1] << 8)).toBe(f32ToF16(d));
    const qs = Array.from(bytes.subarray(2), (b) => (b << 24) >> 24);
    // round(x · (1/d)) with C roundf (halves away from zero)
    expect(qs).toEqual(Array.from(ramp, (x) => Math.sign(x) * Math.round(Math.abs(x * (127 / 16)))));
    expect(qs[0]).toBe(-127);
    expect(qs[17]).toBe(8); // 7.9375
    expect(qs[18]).toBe(16); // 15.875
  });

  it('all-zero block has scale 0 and zero quants', () => {
    const bytes = quantizeQ8_0(2, 32, new Float32Array(64));
    expect(Array.from(bytes).every((b) => b === 0)).toBe(true);
    expect(Array.from(dequantizeQ8_0(2, 32, bytes)).every((v) => v === 0)).toBe(true);
  });

  it('pads a row with cols % 32 != 0 with zeros and round-trips within d·(1/2 + 2^-4)', () => {
    const [rows, cols] = [3, 37];
    expect(bytesPerRow('q8_0', cols)).toBe(68);
    const rng = new Rng(5);
    const w = Float32Array.from({ length: rows * cols }, () => rng.normal() * 0.05);
    const bytes = quantizeQ8_0(rows, cols, w);
    expect(bytes.length).toBe(rows * 68);
    for (let r = 0; r < rows; r++) {
      for (let j = 5; j < 32; j++) expect(bytes[r * 68 + 34 + 2 + j]).toBe(0);
    }
    const back = dequantizeQ8_0(rows, cols, bytes);
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < 2; b++) {
        const c1 = Math.min(cols, (b + 1) * 32);
        let amax = 0;
        for (let c = b * 32; c < c1; c++) amax = Math.max(amax, Math.abs(w[r * cols + c]));
        // rounding to the grid: d/2; f16 rounding of d: up to 127·d·2^-11 ≈ d/16.
        const bound = (amax / 127) * (0.5 + 1 / 16);
        for (let c = b * 32; c < c1; c++)
          expect(Math.abs(back[r * cols + c] - w[r * cols + c])).toBeLessThanOrEqual(bound);
      }
    }
  });
});

describe('q4_0', () => {
  it('quantizes a known block like ggml', () => {
    const bytes = quantizeQ4_0(1, 32, ramp);
    expect(bytes.length).toBe(18);
    // max = −16 (largest magnitude, signed) -> d = −16 / −8 = 2
    expect(bytes[0] | (bytes[1] << 8)).toBe(0x4000);
    // element j and element 16 + j share byte j: q = min(15, trunc(x/2 + 8.5))
    expect(bytes[2]).toBe(0x80); // x=−16 -> 0, x=0 -> 8
    expect(bytes[3]).toBe(0x91); // x=−15 -> 1, x=1 -> 9
    expect(bytes[17]).toBe(0xf8); // x=−1 -> 8, x=15 -> 16 clamped to 15
    expect(Array.from(dequantizeQ4_0(1, 32, bytes))).toEqual(
      Array.from(ramp, (x) => (Math.min(15, Math.trunc(x / 2 + 8.5)) - 8) * 2),
    );
  });

  it('takes the sign of the largest magnitude (first on ties) for d', () => {
    const block = new Float32Array(32);
    block[3] = 4;
    block[9] = -4;
    const bytes = quantizeQ4_0(1, 32, block);
    expect(f16ToF32(bytes[0] | (bytes[1] << 8))).toBe(-0.5); // max = +4 -> d = −0.5
    const back = dequantizeQ4_0(1, 32, bytes);
    expect(back[3]).toBe(4);
    expect(back[9]).toBe(-3.5); // x/d + 8.5 = 16.5 -> clamped to 15 -> (15 − 8)·(−0.5)
  });

  it('pads a row with cols % 32 != 0 with nibble 8 and round-trips within |d|/2 (|d| when clamped)', () => {
    const [rows, cols] = [4, 45];
    expect(bytesPerRow('q4_0', cols)).toBe(36);
    const rng = new Rng(9);
    const w = Float32Array.from({ length: rows * cols }, () => rng.normal());
    const bytes = quantizeQ4_0(rows, cols, w);
    for (let r = 0; r < rows; r++) {
      for (let j = 13; j < 32; j++) {
        const byte = bytes[r * 36 + 18 + 2 + (j & 15)];
        expect(j < 16 ? byte & 15 : byte >> 4).toBe(8);
      }
    }
    const back = dequantizeQ4_0(rows, cols, bytes);
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < 2; b++) {
        const c1 = Math.min(cols, (b + 1) * 32);
        let amax = 0;
        for (let c = b * 32; c < c1; c++) amax = Math.max(amax, Math.abs(w[r * cols + c]));
        const d = amax / 8;
        for (let c = b * 32; c < c1; c++) {
          const x = w[r * cols + c];
          const err = Math.abs(back[r * cols + c] - x);
          // f16 rounding of d adds up to 8·|d|·2^-11 = |d|/256.
          const clamped = Math.abs(x) > 7.5 * d;
          expect(err).toBeLessThanOrEqual(d * ((clamped ? 1 : 0.5) + 1 / 256));
        }
      }
    }
  });
});

describe('encodeWeight / decodeWeight', () => {
  it('use the documented byte sizes and decode to the same values as the format-specific functions', () => {
    const [rows, cols] = [3, 40];
    const rng = new Rng(3);
    const w = Float32Array.from({ length: rows * cols }, () => rng.normal());
    for (const format of WEIGHT_FORMATS) {
      const bytes = encodeWeight(format, rows, cols, w);
      expect(bytes.length).toBe(rows * bytesPerRow(format, cols));
      const back = decodeWeight(format, rows, cols, bytes);
      expect(back.length).toBe(rows * cols);
      if (format === 'f32') expect(Array.from(back)).toEqual(Array.from(w));
      if (format === 'f16') expect(Array.from(back)).toEqual(Array.from(w, (x) => f16ToF32(f32ToF16(x))));
      if (format === 'q8_0') expect(back).toEqual(dequantizeQ8_0(rows, cols, quantizeQ8_0(rows, cols, w)));
      if (format === 'q4_0') expect(back).toEqual(dequantizeQ4_0(rows, cols, quantizeQ4_0(rows, cols, w)));
    }
  });

  it('rejects short buffers', () => {
    expect(() => decodeWeight('q8_0', 2, 32, new Uint8Array(67))).toThrow(RangeError);
    expect(() => quantizeQ4_0(2, 32, new Float32Array(63))).toThrow(RangeError);
  });
});
