import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/engine/errors.ts';
import { placeColumns, takeColumns, type ColumnsShape } from '../../src/engine/kernels/columns.ts';
import { foldWorkgroups } from '../../src/engine/kernels/layer-grid.ts';
import { placeColumnsRef, takeColumnsRef } from '../../src/engine/reference/columns.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// A copy is exact: every comparison below is bitwise equality.
const cases: (ColumnsShape & { name: string })[] = [
  { name: 'single element', T: 1, width: 1, rowStride: 1, offset: 0 },
  { name: 'q slice (offset 0)', T: 300, width: 64, rowStride: 64 + 2 * 16, offset: 0 },
  { name: 'v slice (last columns)', T: 257, width: 16, rowStride: 64 + 2 * 16, offset: 64 + 16 },
  { name: 'middle slice, odd sizes', T: 37, width: 7, rowStride: 23, offset: 9 },
  { name: 'whole row', T: 3, width: 300, rowStride: 300, offset: 0 },
];

describe('placeColumns / takeColumns on the real adapter', () => {
  for (const { name, ...shape } of cases) {
    const { T, width, rowStride, offset } = shape;
    it(`${name}: T=${T} w=${width} @${offset}/${rowStride}`, async () => {
      const ctx = gpu();
      const rng = new Rng(T * 7 + width + offset);
      const compact = randomArray(rng, T * width);
      const wide0 = randomArray(rng, T * rowStride + 5); // 5 spare floats past the last row
      const [bufCompact, bufWide] = await Promise.all([
        ctx.storageFrom('compact', compact),
        ctx.storageFrom('wide', wide0),
      ]);
      const place = await placeColumns(ctx, { src: bufCompact, dst: bufWide }, shape);
      expect(place.label).toBe(`columns place T=${T} w=${width} @${offset}/${rowStride}`);
      await ctx.run([place]);
      const placed = await ctx.readF32(bufWide);
      // Every other column (and the spare tail) keeps its value: the reference copies dst0.
      expect(Array.from(placed)).toEqual(Array.from(placeColumnsRef(compact, wide0, shape)));

      // take reads the slice back out of a different wide buffer into a compact one (tail untouched).
      const wide = randomArray(rng, T * rowStride);
      const out0 = new Float32Array(T * width + 3).fill(-7);
      const [bufWide2, bufOut] = await Promise.all([
        ctx.storageFrom('wide2', wide),
        ctx.storageFrom('out', out0),
      ]);
      const take = await takeColumns(ctx, { src: bufWide2, dst: bufOut }, shape);
      expect(take.label).toBe(`columns take T=${T} w=${width} @${offset}/${rowStride}`);
      await ctx.run([take]);
      const got = await ctx.readF32(bufOut);
      expect(Array.from(got.subarray(0, T * width))).toEqual(Array.from(takeColumnsRef(wide, shape)));
      expect(Array.from(got.subarray(T * width))).toEqual([-7, -7, -7]);
      for (const b of [bufCompact, bufWide, bufWide2, bufOut]) b.destroy();
    });
  }

  it('q, k, v placed into one fused row and taken back out round-trip', async () => {
    const ctx = gpu();
    const [T, Q, KV] = [70, 48, 16];
    const stride = Q + 2 * KV;
    const rng = new Rng(11);
    const parts = [randomArray(rng, T * Q), randomArray(rng, T * KV), randomArray(rng, T * KV)];
    const widths = [Q, KV, KV];
    const offsets = [0, Q, Q + KV];
    const fused = await ctx.storageFrom('fused', new Float32Array(T * stride).fill(NaN));
    const sources = await Promise.all(parts.map((p, i) => ctx.storageFrom(`part${i}`, p)));
    const backs = await Promise.all(parts.map((p, i) => ctx.storage(`back${i}`, p.byteLength)));
    const shape = (i: number) => ({ T, width: widths[i], rowStride: stride, offset: offsets[i] });
    await ctx.run(
      await Promise.all([0, 1, 2].map((i) => placeColumns(ctx, { src: sources[i], dst: fused }, shape(i)))),
    );
    const got = await ctx.readF32(fused);
    expect(got.some((v) => Number.isNaN(v))).toBe(false); // the three slices cover every column
    let want: Float64Array = new Float64Array(T * stride);
    for (let i = 0; i < 3; i++) want = placeColumnsRef(parts[i], want, shape(i));
    expect(Array.from(got)).toEqual(Array.from(want));
    await ctx.run(
      await Promise.all([0, 1, 2].map((i) => takeColumns(ctx, { src: fused, dst: backs[i] }, shape(i)))),
    );
    for (let i = 0; i < 3; i++) expect(Array.from(await ctx.readF32(backs[i]))).toEqual(Array.from(parts[i]));
    for (const b of [fused, ...sources, ...backs]) b.destroy();
  });

  it('a grid folded into y and z covers every element exactly once', async () => {
    const ctx = gpu();
    const shape = { T: 2563, width: 1, rowStride: 3, offset: 2 }; // 11 workgroups folded as 3 x 2 x 2
    const rng = new Rng(5);
    const wide = randomArray(rng, shape.T * 3);
    const bufWide = await ctx.storageFrom('wide', wide);
    const bufOut = await ctx.storage('out', shape.T * 4);
    const dispatch = await takeColumns(ctx, { src: bufWide, dst: bufOut }, shape);
    const workgroups = foldWorkgroups(11, 3);
    expect(workgroups[2]).toBeGreaterThan(1);
    await ctx.run([{ ...dispatch, workgroups }]);
    expect(Array.from(await ctx.readF32(bufOut))).toEqual(Array.from(takeColumnsRef(wide, shape)));
    bufWide.destroy();
    bufOut.destroy();
  });

  it('rejects bad shapes and short buffers with a ShapeError', async () => {
    const ctx = gpu();
    const small = await ctx.storage('small', 4 * 12); // 12 floats
    const big = await ctx.storage('big', 4 * 64);
    const ok = { T: 3, width: 4, rowStride: 8, offset: 4 };
    for (const shape of [
      { ...ok, offset: 5 }, // offset + width > rowStride
      { ...ok, width: 0 },
      { ...ok, rowStride: 0, offset: 0 },
      { ...ok, T: -1 },
      { ...ok, T: 1.5 },
      { ...ok, offset: -1 },
      { ...ok, offset: NaN },
      { T: 2 ** 16, width: 1, rowStride: 2 ** 16, offset: 0 }, // T·rowStride = 2^32
      { T: 1, width: 1, rowStride: 2 ** 32, offset: 0 },
    ]) {
      await expect(
        placeColumns(ctx, { src: small, dst: big }, shape),
        JSON.stringify(shape),
      ).rejects.toBeInstanceOf(ShapeError);
      await expect(
        takeColumns(ctx, { src: big, dst: small }, shape),
        JSON.stringify(shape),
      ).rejects.toBeInstanceOf(ShapeError);
    }
    // The wide side needs (T - 1)·rowStride + offset + width = 24 floats; the compact side T·width = 12.
    await expect(placeColumns(ctx, { src: small, dst: small }, ok)).rejects.toThrow(
      /dst holds 48 bytes, needs 96/,
    );
    await expect(takeColumns(ctx, { src: small, dst: big }, ok)).rejects.toThrow(
      /src holds 48 bytes, needs 96/,
    );
    await expect(placeColumns(ctx, { src: { buffer: small, offset: 16 }, dst: big }, ok)).rejects.toThrow(
      /src holds 32 bytes, needs 48/,
    );
    await expect(takeColumns(ctx, { src: big, dst: { buffer: big, size: 44 } }, ok)).rejects.toThrow(
      /dst holds 44 bytes, needs 48/,
    );
    await expect(placeColumns(ctx, { src: small, dst: big }, ok)).resolves.toBeDefined();
    await expect(takeColumns(ctx, { src: big, dst: small }, ok)).resolves.toBeDefined();
    small.destroy();
    big.destroy();
  });
});
