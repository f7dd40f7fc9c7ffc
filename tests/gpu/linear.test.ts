import { describe, expect, it } from 'vitest';
import { KERNEL_SETS, type KernelSet } from '../../src/engine/gpu/context.ts';
import type { Binding, GpuContext } from '../../src/engine/gpu/index.ts';
import {
  linearBackwardInput,
  linearForward,
  planWeightChunks,
  uploadWeight,
  type LinearWeight,
} from '../../src/engine/kernels/linear.ts';
import { bytesPerRow, encodeWeight, WEIGHT_FORMATS, type WeightFormat } from '../../src/engine/quant.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import {
  linearBackwardInputRef,
  linearForwardRef,
  type WeightRef,
} from '../../src/engine/reference/quant.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// The kernel multiplies the exact decoded weights (the reference decodes the same bytes), so the
// only error is f32 accumulation over K ≤ 130 terms: 1e-5 of the output scale, as for matmul.
const TOLERANCE = 1e-5;

/** [T, out, in]: T = 1, out/in not multiples of 32 or of the 64-tile, in < 32, in > 64. */
const shapes: [number, number, number][] = [
  [1, 1, 1],
  [1, 5, 37],
  [3, 70, 100],
  [65, 33, 64],
  [17, 130, 45],
  [5, 67, 20], // one block per row: q8_0/q4_0 rows start at byte offsets ≡ 2 (mod 4)
  [4, 9, 90], // three blocks per row (102 / 54 bytes)
  [6, 68, 45], // out a multiple of 4: dx reads dy rows as vec4; forward K and dx N end mid-group of 4
  [7, 40, 66], // the same, ending 2 into a group (f32 / f16 rows are not padded)
  [70, 131, 83], // past two 64-tiles of output columns, ragged T, in not a multiple of 16 (tiled K step)
];

interface Case {
  weight: LinearWeight;
  ref: WeightRef;
}

async function makeWeight(
  ctx: GpuContext,
  format: WeightFormat,
  rows: number,
  cols: number,
  rng: Rng,
  byteOffset = 0,
): Promise<Case> {
  const values = Float32Array.from({ length: rows * cols }, () => rng.normal() * 0.5);
  const bytes = encodeWeight(format, rows, cols, values);
  const ref = { format, rows, cols, bytes };
  if (byteOffset === 0) return { weight: await uploadWeight(ctx, 'W', format, rows, cols, bytes), ref };
  // The weight inside a bigger buffer, starting at a non-aligned offset.
  const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4 + 8);
  padded.set(bytes);
  const buffer = await ctx.storage('Wbig', byteOffset + padded.length);
  ctx.write(buffer, new Float32Array(byteOffset / 4).fill(NaN));
  ctx.write(buffer, padded, byteOffset);
  const binding: Binding = { buffer, offset: byteOffset };
  return { weight: { format, rows, cols, buffer: binding }, ref };
}

async function checkBothDirections(
  ctx: GpuContext,
  c: Case,
  T: number,
  rng: Rng,
  options: { maxBindingBytes?: number; forceWeightKernel?: boolean; kernels?: KernelSet } = {},
): Promise<number> {
  const { rows: out, cols: inF } = c.ref;
  const x = randomArray(rng, T * inF);
  const y0 = randomArray(rng, T * out);
  const dy = randomArray(rng, T * out);
  const dx0 = randomArray(rng, T * inF);
  const [bx, by, bdy, bdx] = await Promise.all([
    ctx.storageFrom('x', x),
    ctx.storageFrom('y', y0),
    ctx.storageFrom('dy', dy),
    ctx.storageFrom('dx', dx0),
  ]);
  const opts = { alpha: 0.75, beta: 1, ...options };
  const forward = await linearForward(ctx, bx, c.weight, by, T, opts);
  const backward = await linearBackwardInput(ctx, bdy, c.weight, bdx, T, opts);
  await ctx.run([...forward, ...backward]);
  const gotY = await ctx.readF32(by);
  const gotDx = await ctx.readF32(bdx);
  const errY = compare(gotY, linearForwardRef(x, c.ref, T, { alpha: 0.75, beta: 1, y0 })).maxRel;
  const errDx = compare(gotDx, linearBackwardInputRef(dy, c.ref, T, { alpha: 0.75, beta: 1, dx0 })).maxRel;
  for (const b of [bx, by, bdy, bdx]) b.destroy();
  expect(errY).toBeLessThan(TOLERANCE);
  expect(errDx).toBeLessThan(TOLERANCE);
  return forward.length;
}

// Both kernel sets ('cpu' barrier-free, 'gpu' workgroup-memory tiles) against the same reference.
for (const kernels of KERNEL_SETS)
  describe(`linear (frozen weight in any format, ${kernels} kernels) on the real adapter`, () => {
    for (const format of WEIGHT_FORMATS) {
      for (const [T, out, inF] of shapes) {
        it(`${format} T=${T} out=${out} in=${inF}: forward and dx`, async () => {
          const ctx = gpu();
          const rng = new Rng(T * 7919 + out * 31 + inF);
          const c = await makeWeight(ctx, format, out, inF, rng);
          await checkBothDirections(ctx, c, T, rng, { kernels });
        });
      }
    }

    it('f32 through the weight kernel (not the shared matmul) matches too', async () => {
      const ctx = gpu();
      const rng = new Rng(404);
      const c = await makeWeight(ctx, 'f32', 70, 45, rng);
      await checkBothDirections(ctx, c, 9, rng, { forceWeightKernel: true, kernels });
    });

    for (const format of WEIGHT_FORMATS) {
      it(`${format}: weight split by rows across bindings, at an unaligned offset in a bigger buffer`, async () => {
        const ctx = gpu();
        const rng = new Rng(77);
        const [out, inF, T] = [37, 75, 19]; // rows of 3 blocks: chunks start at offsets ≡ 2 (mod 4)
        const c = await makeWeight(ctx, format, out, inF, rng, 12);
        // Room for 5 rows per binding: 8 chunks, most starting at a row that is not 256-aligned.
        const maxBindingBytes = 258 + 5 * bytesPerRow(format, inF);
        const dispatches = await checkBothDirections(ctx, c, T, rng, { maxBindingBytes, kernels });
        expect(dispatches).toBe(8);
      });
    }

    for (const format of WEIGHT_FORMATS) {
      it(`${format}: split into chunks of 6 rows (dx: every other chunk reads dy as vec4, K = 6)`, async () => {
        const ctx = gpu();
        const rng = new Rng(78);
        const [out, inF, T] = [36, 44, 9];
        const c = await makeWeight(ctx, format, out, inF, rng, 16);
        const maxBindingBytes = 258 + 6 * bytesPerRow(format, inF);
        const dispatches = await checkBothDirections(ctx, c, T, rng, { maxBindingBytes, kernels });
        expect(dispatches).toBe(6);
      });
    }

    it('f32 weight at an aligned offset in a bigger buffer goes through the shared matmul', async () => {
      const ctx = gpu();
      const rng = new Rng(31);
      const c = await makeWeight(ctx, 'f32', 21, 50, rng, 512);
      const forward = await linearForward(
        ctx,
        await ctx.storage('x', 4),
        c.weight,
        await ctx.storage('y', 4),
        1,
        { kernels },
      );
      expect(forward.map((d) => d.label.split(' ')[0])).toEqual(['matmul']);
      expect(forward[0].label.endsWith(' tiled')).toBe(kernels === 'gpu');
      await checkBothDirections(ctx, c, 6, rng, { kernels });
    });

    for (const split of [false, true]) {
      it(`beta = 0 ignores NaN already in the output${split ? ' (split weight: later chunks accumulate)' : ''}`, async () => {
        const ctx = gpu();
        const rng = new Rng(5);
        const [T, out, inF] = [6, 40, 33];
        const c = await makeWeight(ctx, 'q4_0', out, inF, rng);
        const maxBindingBytes = split ? 258 + 7 * bytesPerRow('q4_0', inF) : undefined;
        const x = randomArray(rng, T * inF);
        const dy = randomArray(rng, T * out);
        const by = await ctx.storageFrom('y', new Float32Array(T * out).fill(NaN));
        const bdx = await ctx.storageFrom('dx', new Float32Array(T * inF).fill(NaN));
        const bx = await ctx.storageFrom('x', x);
        const bdy = await ctx.storageFrom('dy', dy);
        const forward = await linearForward(ctx, bx, c.weight, by, T, { maxBindingBytes, kernels });
        const backward = await linearBackwardInput(ctx, bdy, c.weight, bdx, T, { maxBindingBytes, kernels });
        expect(backward.length).toBe(split ? 6 : 1);
        await ctx.run([...forward, ...backward]);
        expect(compare(await ctx.readF32(by), linearForwardRef(x, c.ref, T)).maxRel).toBeLessThan(TOLERANCE);
        expect(compare(await ctx.readF32(bdx), linearBackwardInputRef(dy, c.ref, T)).maxRel).toBeLessThan(
          TOLERANCE,
        );
      });
    }
  });

describe('planWeightChunks', () => {
  it('covers every row once with aligned bindings within the limit', () => {
    for (const format of WEIGHT_FORMATS) {
      for (const [rows, cols, base, max] of [
        [100, 45, 0, 1000],
        [100, 45, 12, 1000],
        [3, 4096, 256, 1 << 20],
        [1000, 33, 4, 300 + bytesPerRow(format, 33)],
      ]) {
        const rowBytes = bytesPerRow(format, cols);
        const chunks = planWeightChunks({ format, rows, cols }, base, max, 256);
        let next = 0;
        for (const chunk of chunks) {
          expect(chunk.row0).toBe(next);
          next += chunk.rows;
          expect(chunk.bindOffset % 256).toBe(0);
          expect(chunk.bindSize % 4).toBe(0);
          expect(chunk.bindSize).toBeLessThanOrEqual(max);
          expect(chunk.bindOffset + chunk.byteBase).toBe(base + chunk.row0 * rowBytes);
          expect(chunk.bindSize).toBeGreaterThanOrEqual(chunk.byteBase + chunk.rows * rowBytes);
        }
        expect(next).toBe(rows);
        if (rows * rowBytes + base <= max) expect(chunks.length).toBe(1);
      }
    }
  });

  it('refuses a row that cannot fit in one binding', () => {
    expect(() => planWeightChunks({ format: 'f32', rows: 2, cols: 100 }, 0, 300, 256)).toThrow(/maxStorage/);
  });
});
