import { describe, expect, it } from 'vitest';
import { ShapeError, VulnLabError } from '../../src/engine/errors.ts';
import type { GpuContext } from '../../src/engine/gpu/index.ts';
import { prepareEmbeddingLora, type EmbeddingLoraShape } from '../../src/engine/kernels/embedding-lora.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { embeddingLoraRef } from '../../src/engine/reference/embedding-lora.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// Forward: x0 + s·h·Bᵀ with r ≤ 8 terms; dh: D ≤ 40 terms; dB: T ≤ 300 terms; dA: sums of dh over
// at most ~100 repeats of an id. All f32 with terms of size ~1, so the rounding is well under 1e-5 of
// the scale, while any indexing, transpose, scaling or lost/doubled token is O(1).
const TOLERANCE = 1e-5;

type IdKind = 'random' | 'once';

interface Case {
  shape: EmbeddingLoraShape;
  ids: IdKind;
  accumulate?: boolean;
  /** PEFT's init: A = 0. */
  zeroA?: boolean;
}

function makeIds(rng: Rng, T: number, V: number, kind: IdKind): Int32Array {
  if (kind === 'random') return Int32Array.from({ length: T }, () => rng.int(V));
  // Each id at most once (V ≥ T): a shuffled prefix of the vocabulary.
  return Int32Array.from(rng.shuffle(Array.from({ length: V }, (_, v) => v)).slice(0, T));
}

interface Run {
  x: Float32Array;
  h: Float32Array;
  gradA: Float32Array;
  gradB: Float32Array;
  dh: Float32Array;
}

/** Uploads, runs forward + backward once on fresh buffers and reads every output back. */
async function runOnce(
  ctx: GpuContext,
  shape: EmbeddingLoraShape,
  data: {
    ids: Int32Array;
    a: Float32Array;
    b: Float32Array;
    x0: Float32Array;
    dx: Float32Array;
    gradA0?: Float32Array;
    gradB0?: Float32Array;
  },
  accumulate: boolean,
): Promise<Run> {
  const { T, D, V, rank: R } = shape;
  const nan = (n: number) => new Float32Array(n).fill(NaN);
  const buffers = {
    ids: await ctx.storageFrom('ids', data.ids),
    a: await ctx.storageFrom('A', data.a),
    b: await ctx.storageFrom('B', data.b),
    x: await ctx.storageFrom('x', data.x0),
    // NaN where the kernel must overwrite: a missed element fails the comparison.
    h: await ctx.storageFrom('h', nan(T * R)),
    dx: await ctx.storageFrom('dx', data.dx),
    gradA: await ctx.storageFrom('gradA', data.gradA0 ?? nan(R * V)),
    gradB: await ctx.storageFrom('gradB', data.gradB0 ?? nan(D * R)),
    dh: await ctx.storageFrom('dh', nan(T * R)),
  };
  const lora = await prepareEmbeddingLora(ctx, buffers, shape, { accumulate });
  lora.setTokens(data.ids);
  await ctx.run([...lora.forward, ...lora.backward]);
  const out = {
    x: await ctx.readF32(buffers.x),
    h: await ctx.readF32(buffers.h),
    gradA: await ctx.readF32(buffers.gradA),
    gradB: await ctx.readF32(buffers.gradB),
    dh: await ctx.readF32(buffers.dh),
  };
  lora.destroy();
  for (const buffer of Object.values(buffers)) buffer.destroy();
  return out;
}

async function checkCase(ctx: GpuContext, { shape, ids: kind, accumulate = false, zeroA = false }: Case) {
  const { T, D, V, rank: R } = shape;
  const rng = new Rng(T * 1000 + D * 10 + V + R);
  const ids = makeIds(rng, T, V, kind);
  const a = zeroA ? new Float32Array(R * V) : randomArray(rng, R * V);
  const b = randomArray(rng, D * R);
  const x0 = randomArray(rng, T * D);
  const dx = randomArray(rng, T * D);
  const gradA0 = accumulate ? randomArray(rng, R * V) : undefined;
  const gradB0 = accumulate ? randomArray(rng, D * R) : undefined;
  const got = await runOnce(ctx, shape, { ids, a, b, x0, dx, gradA0, gradB0 }, accumulate);
  const ref = embeddingLoraRef({ ids, a, b, ...shape }, dx);

  // The gather is a copy: exact.
  expect(Array.from(got.h)).toEqual(Array.from(ref.h));
  const plus = (base: Float32Array | undefined, delta: Float64Array) =>
    Float64Array.from(delta, (d, i) => d + (base ? base[i] : 0));
  const checks: [string, Float32Array, Float64Array][] = [
    ['x', got.x, plus(x0, ref.y)],
    ['dh', got.dh, ref.dh],
    ['gradA', got.gradA, plus(gradA0, ref.dA)],
    ['gradB', got.gradB, plus(gradB0, ref.dB)],
  ];
  for (const [name, actual, want] of checks) {
    const { maxRel } = compare(actual, want);
    expect([name, maxRel < TOLERANCE ? 'ok' : maxRel]).toEqual([name, 'ok']);
  }
  // Columns of A whose id is not in the batch get no gradient (exactly their previous value).
  const seen = new Set(ids);
  for (let v = 0; v < V; v++) {
    if (seen.has(v)) continue;
    for (let k = 0; k < R; k++) expect(got.gradA[k * V + v]).toBe(gradA0 ? gradA0[k * V + v] : 0);
  }
  if (zeroA) {
    // PEFT's init: the branch adds exactly nothing and B gets no gradient, but A does.
    expect(Array.from(got.x)).toEqual(Array.from(x0));
    if (!accumulate) expect(got.gradB.every((g) => g === 0)).toBe(true);
    expect(compare(new Float64Array(R * V), ref.dA).maxAbs).toBeGreaterThan(0.1);
  } else {
    // The branch must not be negligible, or the checks above would prove little.
    expect(compare(new Float64Array(T * D), ref.y).maxAbs).toBeGreaterThan(0.1);
  }
}

describe('embedding LoRA float64 reference', () => {
  it('dA and dB match central finite differences of Σ y·dx (repeated ids)', () => {
    const [T, D, V, R, alpha] = [7, 5, 6, 3, 6];
    const rng = new Rng(31);
    const ids = [4, 1, 4, 0, 4, 1, 5]; // id 4 three times, 1 twice, 2 and 3 absent
    const a = Float64Array.from(randomArray(rng, R * V));
    const b = Float64Array.from(randomArray(rng, D * R));
    const dx = Float64Array.from(randomArray(rng, T * D));
    const shape = { T, D, V, rank: R, alpha };
    const loss = (aa: Float64Array, bb: Float64Array) =>
      embeddingLoraRef({ ids, a: aa, b: bb, ...shape }, dx).y.reduce((sum, y, i) => sum + y * dx[i], 0);
    const ref = embeddingLoraRef({ ids, a, b, ...shape }, dx);
    const eps = 1e-5;
    const numeric = (param: Float64Array, other: 'a' | 'b') =>
      Float64Array.from(param, (value, i) => {
        const p = Float64Array.from(param);
        p[i] = value + eps;
        const up = other === 'a' ? loss(p, b) : loss(a, p);
        p[i] = value - eps;
        const down = other === 'a' ? loss(p, b) : loss(a, p);
        return (up - down) / (2 * eps);
      });
    // The loss is linear in A and in B separately, so the central difference is exact up to
    // float64 rounding (~1e-16 / 1e-5 ≈ 1e-11).
    expect(compare(ref.dA, numeric(a, 'a')).maxAbs).toBeLessThan(1e-8);
    expect(compare(ref.dB, numeric(b, 'b')).maxAbs).toBeLessThan(1e-8);
    for (const v of [2, 3]) for (let k = 0; k < R; k++) expect(ref.dA[k * V + v]).toBe(0);
    expect(compare(new Float64Array(R * V), ref.dA).maxAbs).toBeGreaterThan(0.1);
  });
});

describe('embedding LoRA on the real adapter', () => {
  const cases: [string, Case][] = [
    ['single token, rank 1', { shape: { T: 1, D: 5, V: 3, rank: 1, alpha: 2 }, ids: 'random' }],
    ['repeated ids, rank 8', { shape: { T: 37, D: 24, V: 11, rank: 8, alpha: 16 }, ids: 'random' }],
    ['each id once, rank 1, V > T', { shape: { T: 64, D: 40, V: 97, rank: 1, alpha: 8 }, ids: 'once' }],
    [
      'T = 300 (not a multiple of 256), V = 1000 > T, rank 8',
      { shape: { T: 300, D: 16, V: 1000, rank: 8, alpha: 16 }, ids: 'random' },
    ],
    [
      'T = 257, 3 ids repeated ~86 times each, rank 4',
      { shape: { T: 257, D: 9, V: 3, rank: 4, alpha: 4 }, ids: 'random' },
    ],
    [
      'gradient accumulation adds into gradA and gradB',
      { shape: { T: 45, D: 12, V: 20, rank: 8, alpha: 8 }, ids: 'random', accumulate: true },
    ],
    [
      'A = 0 (PEFT init): x unchanged, dB = 0, dA from B',
      { shape: { T: 30, D: 12, V: 50, rank: 4, alpha: 8 }, ids: 'random', zeroA: true },
    ],
  ];
  for (const [name, c] of cases) {
    const { T, D, V, rank } = c.shape;
    it(`${name} (T=${T} D=${D} V=${V} r=${rank})`, async () => {
      await checkCase(gpu(), c);
    });
  }

  it('running twice gives bit-identical results', async () => {
    const ctx = gpu();
    const shape = { T: 300, D: 16, V: 40, rank: 8, alpha: 16 };
    const rng = new Rng(77);
    const data = {
      ids: Int32Array.from({ length: 300 }, () => rng.int(40)),
      a: randomArray(rng, 8 * 40),
      b: randomArray(rng, 16 * 8),
      x0: randomArray(rng, 300 * 16),
      dx: randomArray(rng, 300 * 16),
    };
    const bits = (run: Run) =>
      Object.values(run).map((values: Float32Array) =>
        Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length)),
      );
    const first = bits(await runOnce(ctx, shape, data, false));
    expect(bits(await runOnce(ctx, shape, data, false))).toEqual(first);
  });

  it('forward clamps out-of-range ids in the buffer instead of reading out of bounds', async () => {
    const ctx = gpu();
    const shape = { T: 4, D: 3, V: 3, rank: 2, alpha: 2 };
    const rng = new Rng(5);
    const a = randomArray(rng, 2 * 3);
    const b = randomArray(rng, 3 * 2);
    const buffers = {
      ids: await ctx.storageFrom('ids', new Int32Array([-5, 1, 999, 2])),
      a: await ctx.storageFrom('A', a),
      b: await ctx.storageFrom('B', b),
      x: await ctx.storage('x', 4 * 3 * 4),
      h: await ctx.storage('h', 4 * 2 * 4),
    };
    const lora = await prepareEmbeddingLora(ctx, buffers, shape);
    expect(lora.backward).toEqual([]);
    await ctx.run(lora.forward);
    const ref = embeddingLoraRef({ ids: [0, 1, 2, 2], a, b, ...shape }, new Float64Array(4 * 3));
    expect(Array.from(await ctx.readF32(buffers.h))).toEqual(Array.from(ref.h));
    expect(compare(await ctx.readF32(buffers.x), ref.y).maxRel).toBeLessThan(TOLERANCE);
    lora.destroy();
    for (const buffer of Object.values(buffers)) buffer.destroy();
  });

  it('setTokens rejects bad ids (bad-input) and a wrong count; bad shapes and partial buffers throw', async () => {
    const ctx = gpu();
    const small = await ctx.storage('s', 256);
    const shape = { T: 3, D: 2, V: 4, rank: 2, alpha: 2 };
    const train = {
      ids: small,
      a: small,
      b: small,
      x: small,
      h: small,
      dx: small,
      gradA: small,
      gradB: small,
      dh: small,
    };
    const lora = await prepareEmbeddingLora(ctx, train, shape);
    const thrown = (f: () => void): unknown => {
      try {
        f();
      } catch (error) {
        return error;
      }
      return undefined;
    };
    for (const bad of [
      [0, 4, 1],
      [0, -1, 1],
      [0, 1.5, 2],
    ]) {
      const error = thrown(() => lora.setTokens(bad));
      expect(error).toBeInstanceOf(VulnLabError);
      expect((error as VulnLabError).code).toBe('bad-input');
      expect((error as Error).message).toMatch(/token id .* at position 1 is outside \[0, 4\)/);
    }
    expect(() => lora.setTokens([0, 1])).toThrow(ShapeError);
    lora.setTokens([3, 0, 3]);
    lora.destroy();

    // Evaluation (no backward) still validates the ids.
    const { ids, a, b, x, h } = train;
    const evaluation = await prepareEmbeddingLora(ctx, { ids, a, b, x, h }, shape);
    expect(evaluation.backward).toEqual([]);
    expect(() => evaluation.setTokens([0, 1, 9])).toThrow(/token id 9 at position 2/);
    evaluation.destroy();

    await expect(prepareEmbeddingLora(ctx, { ids, a, b, x, h, dx: small }, shape)).rejects.toThrow(
      ShapeError,
    );
    for (const bad of [{ rank: 0 }, { T: 0 }, { V: 2.5 }, { alpha: NaN }]) {
      await expect(prepareEmbeddingLora(ctx, train, { ...shape, ...bad })).rejects.toThrow(ShapeError);
    }
    small.destroy();
  });
});
