import { describe, expect, it } from 'vitest';
import { ShapeError, VulnLabError } from '../../src/engine/errors.ts';
import { embeddingBackward, embeddingForward, scatterIndex } from '../../src/engine/kernels/embedding.ts';
import { embeddingForwardRef, embeddingScatterRef } from '../../src/engine/reference/embedding.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// Forward is one f32 add per element (1 ulp). Backward adds at most T rows in f32 to the table
// (~T·2^-24 worst case relative, T ≤ 200 here): 1e-6 of the scale catches any lost or doubled token.
const FORWARD_TOLERANCE = 1e-6;
const BACKWARD_TOLERANCE = 1e-6;

const cases: { T: number; C: number; V: number; P: number }[] = [
  { T: 1, C: 1, V: 1, P: 1 },
  { T: 37, C: 33, V: 11, P: 40 },
  { T: 200, C: 9, V: 3, P: 64 },
  { T: 5, C: 300, V: 1000, P: 8 },
];

describe('embedding on the real adapter', () => {
  for (const { T, C, V, P } of cases) {
    it(`forward and backward T=${T} C=${C} V=${V} P=${P} (repeated ids)`, async () => {
      const ctx = gpu();
      const rng = new Rng(T * 13 + C);
      const ids = Int32Array.from({ length: T }, () => rng.int(V));
      const pos = Int32Array.from({ length: T }, (_, t) => t % Math.min(P, 17));
      const wte = randomArray(rng, V * C);
      const wpe = randomArray(rng, P * C);
      const dx = randomArray(rng, T * C);
      const dwte0 = randomArray(rng, V * C);
      const dwpe0 = randomArray(rng, P * C);
      const buf = {
        ids: await ctx.storageFrom('ids', ids),
        pos: await ctx.storageFrom('pos', pos),
        wte: await ctx.storageFrom('wte', wte),
        wpe: await ctx.storageFrom('wpe', wpe),
        x: await ctx.storageFrom('x', new Float32Array(T * C).fill(NaN)),
        dx: await ctx.storageFrom('dx', dx),
        dwte: await ctx.storageFrom('dwte', dwte0),
        dwpe: await ctx.storageFrom('dwpe', dwpe0),
      };
      const shape = { T, C, V, P };
      const backward = await embeddingBackward(ctx, buf, shape);
      backward.setTokens(ids, pos);
      await ctx.run([await embeddingForward(ctx, buf, shape), ...backward.dispatches]);
      expect(
        compare(await ctx.readF32(buf.x), embeddingForwardRef(ids, pos, wte, wpe, C)).maxRel,
      ).toBeLessThan(FORWARD_TOLERANCE);
      const wantWte = embeddingScatterRef(ids, dx, V, C, dwte0);
      const wantWpe = embeddingScatterRef(pos, dx, P, C, dwpe0);
      expect(compare(await ctx.readF32(buf.dwte), wantWte).maxRel).toBeLessThan(BACKWARD_TOLERANCE);
      expect(compare(await ctx.readF32(buf.dwpe), wantWpe).maxRel).toBeLessThan(BACKWARD_TOLERANCE);

      // A second step with other ids reuses the same dispatches after setTokens.
      const ids2 = Int32Array.from(ids).reverse();
      backward.setTokens(ids2, pos);
      await ctx.run(backward.dispatches);
      const wantWte2 = embeddingScatterRef(ids2, dx, V, C, wantWte);
      expect(compare(await ctx.readF32(buf.dwte), wantWte2).maxRel).toBeLessThan(BACKWARD_TOLERANCE);
      backward.destroy();
      for (const b of Object.values(buf)) b.destroy();
    });
  }

  // Rotary-position models: no position table, X[t] = wte[ids[t]] and only the wte scatter.
  const tokenCases: { T: number; C: number; V: number; P?: number }[] = [
    { T: 1, C: 1, V: 1 },
    { T: 37, C: 33, V: 11, P: 0 },
    { T: 300, C: 9, V: 3 }, // T·C spans 11 workgroups
    { T: 5, C: 300, V: 1000, P: 64 }, // a P without a table is ignored
  ];
  for (const { T, C, V, P } of tokenCases) {
    it(`tokens only (no wpe): forward and backward T=${T} C=${C} V=${V} P=${P ?? 'absent'}`, async () => {
      const ctx = gpu();
      const rng = new Rng(T * 17 + C);
      const ids = Int32Array.from({ length: T }, () => rng.int(V));
      const wte = randomArray(rng, V * C);
      const dx = randomArray(rng, T * C);
      const dwte0 = randomArray(rng, V * C);
      const buf = {
        ids: await ctx.storageFrom('ids', ids),
        wte: await ctx.storageFrom('wte', wte),
        x: await ctx.storageFrom('x', new Float32Array(T * C + 4).fill(NaN)),
        dx: await ctx.storageFrom('dx', dx),
        dwte: await ctx.storageFrom('dwte', dwte0),
      };
      const shape = P === undefined ? { T, C, V } : { T, C, V, P };
      const forward = await embeddingForward(ctx, buf, shape);
      expect(forward.label).toBe(`embedding tokens ${T}x${C}`);
      const backward = await embeddingBackward(ctx, buf, shape);
      expect(backward.dispatches).toHaveLength(1);
      backward.setTokens(ids);
      await ctx.run([forward, ...backward.dispatches]);
      const x = await ctx.readF32(buf.x);
      // A gather with no add is exact; the 4 floats past T·C stay untouched.
      expect(Array.from(x.subarray(0, T * C))).toEqual(
        Array.from(embeddingForwardRef(ids, undefined, wte, undefined, C)),
      );
      expect(x.subarray(T * C).every((v) => Number.isNaN(v))).toBe(true);
      const wantWte = embeddingScatterRef(ids, dx, V, C, dwte0);
      expect(compare(await ctx.readF32(buf.dwte), wantWte).maxRel).toBeLessThan(BACKWARD_TOLERANCE);

      // Positions passed anyway are ignored (no position table to scatter into).
      const ids2 = Int32Array.from(ids).reverse();
      backward.setTokens(
        ids2,
        Int32Array.from({ length: T }, (_, t) => t + 1000),
      );
      await ctx.run(backward.dispatches);
      const wantWte2 = embeddingScatterRef(ids2, dx, V, C, wantWte);
      expect(compare(await ctx.readF32(buf.dwte), wantWte2).maxRel).toBeLessThan(BACKWARD_TOLERANCE);
      backward.destroy();
      for (const b of Object.values(buf)) b.destroy();
    });
  }

  it('tokens only: forward clamps out-of-range ids; the reference takes no table', async () => {
    const ctx = gpu();
    const [C, V] = [4, 3];
    const ids = new Int32Array([-5, 1, 999, 2]);
    const wte = randomArray(new Rng(8), V * C);
    const x = await ctx.storage('x', ids.length * C * 4);
    const buf = { ids: await ctx.storageFrom('ids', ids), wte: await ctx.storageFrom('wte', wte), x };
    await ctx.run([await embeddingForward(ctx, buf, { T: 4, C, V })]);
    const want = embeddingForwardRef([0, 1, 2, 2], undefined, wte, undefined, C);
    expect(Array.from(await ctx.readF32(x))).toEqual(Array.from(want));
    expect(Array.from(want.subarray(4, 8))).toEqual(Array.from(wte.subarray(4, 8)));
    expect(() => embeddingForwardRef([0], [0], wte, undefined, C)).toThrow(/neither/);
  });

  it('the position table is both pos and wpe or neither; P is checked only with it', async () => {
    const ctx = gpu();
    const b = await ctx.storage('b', 64);
    const shape = { T: 2, C: 2, V: 2, P: 2 };
    await expect(embeddingForward(ctx, { ids: b, pos: b, wte: b, x: b }, shape)).rejects.toBeInstanceOf(
      ShapeError,
    );
    await expect(embeddingForward(ctx, { ids: b, wte: b, wpe: b, x: b }, shape)).rejects.toThrow(/neither/);
    const full = { ids: b, pos: b, wte: b, wpe: b, x: b };
    await expect(embeddingForward(ctx, full, { T: 2, C: 2, V: 2 })).rejects.toThrow(/bad P = undefined/);
    await expect(embeddingForward(ctx, full, { ...shape, P: 0 })).rejects.toBeInstanceOf(ShapeError);
    await expect(embeddingForward(ctx, { ids: b, wte: b, x: b }, { ...shape, P: -1 })).rejects.toBeInstanceOf(
      ShapeError,
    );
    await expect(
      embeddingBackward(ctx, { dx: b, dwte: b, dwpe: b }, { T: 2, C: 2, V: 2 }),
    ).rejects.toBeInstanceOf(ShapeError);
    const withPositions = await embeddingBackward(ctx, { dx: b, dwte: b, dwpe: b }, shape);
    expect(withPositions.dispatches).toHaveLength(2);
    expect(() => withPositions.setTokens([0, 1])).toThrow(ShapeError);
    withPositions.destroy();
    const tokensOnly = await embeddingBackward(ctx, { dx: b, dwte: b }, { T: 2, C: 2, V: 2, P: 0 });
    expect(() => tokensOnly.setTokens([0])).toThrow(/expected 2 ids/);
    expect(() => tokensOnly.setTokens([0, 2])).toThrow(/token id 2/);
    tokensOnly.setTokens([1, 0]);
    tokensOnly.destroy();
    b.destroy();
  });

  it('forward clamps out-of-range ids instead of reading out of bounds', async () => {
    const ctx = gpu();
    const [C, V, P] = [4, 3, 2];
    const ids = new Int32Array([-5, 1, 999, 2]);
    const pos = new Int32Array([0, 7, -1, 1]);
    const rng = new Rng(2);
    const wte = randomArray(rng, V * C);
    const wpe = randomArray(rng, P * C);
    const x = await ctx.storage('x', ids.length * C * 4);
    const buf = {
      ids: await ctx.storageFrom('ids', ids),
      pos: await ctx.storageFrom('pos', pos),
      wte: await ctx.storageFrom('wte', wte),
      wpe: await ctx.storageFrom('wpe', wpe),
      x,
    };
    await ctx.run([await embeddingForward(ctx, buf, { T: 4, C, V, P })]);
    const want = embeddingForwardRef([0, 1, 2, 2], [0, 1, 0, 1], wte, wpe, C);
    expect(compare(await ctx.readF32(x), want).maxRel).toBeLessThan(FORWARD_TOLERANCE);
  });

  it('the CPU side rejects bad ids with a typed error', async () => {
    expect(() => scatterIndex([0, 3], 3)).toThrow(VulnLabError);
    expect(() => scatterIndex([0, -1], 3)).toThrow(/outside/);
    const ctx = gpu();
    const [dx, dwte, dwpe] = await Promise.all([
      ctx.storage('dx', 8),
      ctx.storage('dwte', 16),
      ctx.storage('dwpe', 8),
    ]);
    const backward = await embeddingBackward(ctx, { dx, dwte, dwpe }, { T: 2, C: 1, V: 4, P: 2 });
    expect(() => backward.setTokens([0, 1], [0, 2])).toThrow(/position id 2/);
    backward.destroy();
  });

  it('scatterIndex groups repeated ids in token order', () => {
    expect(Array.from(scatterIndex([2, 0, 2, 1, 0], 3))).toEqual([
      3, // U
      0,
      2,
      3,
      5,
      0,
      0, // starts (U + 1 used)
      0,
      1,
      2,
      0,
      0, // rows
      1,
      4,
      3,
      0,
      2, // order
    ]);
  });
});
