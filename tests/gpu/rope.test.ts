/**
 * Rotary position embedding (shaders/rope.wgsl, src/engine/kernels/rope.ts) against the float64
 * reference (src/engine/reference/rope.ts): multi-query, grouped-query and multi-head layouts, head
 * dims 8 / 64 / 128, θ 1e4 and 1e6, linear scaling, positions that restart per packed function,
 * forward and backward in place, V and unused columns untouched bit for bit.
 */
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/engine/errors.ts';
import {
  prepareRope,
  ropeQkvLayout,
  type QkvLayout,
  type RopeOptions,
  type RopeShape,
} from '../../src/engine/kernels/rope.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { ropeBackwardRef, ropeForwardRef, ropeInvFreq } from '../../src/engine/reference/rope.ts';
import { useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// The kernel's own error per pair, relative to the pair's norm, against the reference that rounds the
// angle as the kernel does (f32(pos)·f32(inv_freq) in f32): range reduction (≲ 3e-7 rad), the sinf/
// cosf polynomials (≲ 2e-7) and the rotation's two products and a sum (≲ 2 ulp). Measured 1.7e-7 on
// lavapipe for positions ≤ 4096. Past a ≈ 2¹³·π/2 the reduction's k·PIO2_2 starts rounding (≲ 6e-7 rad
// at 32767; measured 5.0e-7), hence the looser bound there.
const KERNEL_TOLERANCE = 4e-7;
const LONG_KERNEL_TOLERANCE = 1e-6;
// Against the exact float64 reference the angle's f32 rounding adds ≤ a·2⁻²³ rad (inv_freq rounded
// once, the product once; a = |pos·inv_freq| ≤ pos), i.e. up to 4.9e-4 relative at pos 4096 and 3.9e-3
// at 32767: the f32 recipe of Hugging Face, not the kernel. Checked per pair as
// err ≤ ‖pair‖·(a·2⁻²² + kernel tolerance) (2× headroom on the angle term; measured ratio ≤ 0.44).
const ANGLE_ULP_FACTOR = 2 ** -22;

const rows = (T: number, layout: QkvLayout): number => T * layout.rowStride;

/** Position ids of a packed row: functions of random lengths, each restarting at 0; padding at 0. */
function packedPositions(rng: Rng, T: number, maxLength: number, padding = 0): Int32Array {
  const pos = new Int32Array(T);
  let t = 0;
  while (t < T - padding) {
    const n = Math.min(1 + rng.int(maxLength), T - padding - t);
    for (let p = 0; p < n; p++) pos[t++] = p;
  }
  return pos; // the trailing `padding` tokens stay at position 0, as src/train/batches.ts pads
}

/** The columns of a row that hold a Q or K head element (the rest must come back bit for bit). */
function headColumns(shape: RopeShape): Set<number> {
  const { nHead, nKvHead, headDim, layout } = shape;
  const cols = new Set<number>();
  for (let h = 0; h < nHead; h++)
    for (let i = 0; i < headDim; i++) cols.add(layout.qOffset + h * layout.qHeadStride + i);
  for (let g = 0; g < nKvHead; g++)
    for (let i = 0; i < headDim; i++) cols.add(layout.kOffset + g * layout.kHeadStride + i);
  return cols;
}

interface PairErrors {
  /** Worst |got − want| / ‖pair‖ against the f32-angle reference. */
  kernel: number;
  /** Worst |got − want| / (‖pair‖·(a·2⁻²² + kernel tolerance)) against the float64 reference (< 1 passes). */
  exactRatio: number;
  /** Worst |‖got pair‖ − ‖input pair‖| / ‖input pair‖. */
  norm: number;
  /** Columns outside the Q/K heads that changed (should be none). */
  changedOther: number;
}

function pairErrors(
  input: Float32Array,
  got: Float32Array,
  pos: Int32Array,
  shape: RopeShape,
  options: RopeOptions,
  direction: 'forward' | 'backward',
  kernelTolerance = KERNEL_TOLERANCE,
): PairErrors {
  const ref = direction === 'forward' ? ropeForwardRef : ropeBackwardRef;
  const exact = ref(input, pos, shape, options);
  const f32 = ref(input, pos, shape, options, { f32Angles: true });
  const { T, nHead, nKvHead, headDim, layout } = shape;
  const half = headDim / 2;
  const invFreq = ropeInvFreq(headDim, options);
  const starts: number[] = [];
  for (let h = 0; h < nHead; h++) starts.push(layout.qOffset + h * layout.qHeadStride);
  for (let g = 0; g < nKvHead; g++) starts.push(layout.kOffset + g * layout.kHeadStride);
  const out = { kernel: 0, exactRatio: 0, norm: 0, changedOther: 0 };
  const worse = (key: 'kernel' | 'exactRatio' | 'norm', v: number): void => {
    if (!(v <= out[key])) out[key] = v; // NaN sticks
  };
  for (let t = 0; t < T; t++) {
    for (const start of starts) {
      for (let i = 0; i < half; i++) {
        const j = t * layout.rowStride + start + i;
        const k = j + half;
        const norm = Math.max(Math.hypot(input[j], input[k]), 1e-30);
        const kernel = Math.max(Math.abs(got[j] - f32[j]), Math.abs(got[k] - f32[k])) / norm;
        worse('kernel', kernel);
        const a = Math.abs(pos[t] * invFreq[i]);
        const err = Math.max(Math.abs(got[j] - exact[j]), Math.abs(got[k] - exact[k]));
        worse('exactRatio', err / (norm * (a * ANGLE_ULP_FACTOR + kernelTolerance)));
        worse('norm', Math.abs(Math.hypot(got[j], got[k]) - norm) / norm);
      }
    }
  }
  const heads = headColumns(shape);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < layout.rowStride; c++) {
      const e = t * layout.rowStride + c;
      if (!heads.has(c) && !Object.is(got[e], input[e])) out.changedOther++;
    }
  }
  return out;
}

/** Runs forward on `qkv` and backward on `g` (separate buffers, both in place); returns both results. */
async function runRope(
  shape: RopeShape,
  options: RopeOptions,
  qkv: Float32Array,
  g: Float32Array,
  pos: Int32Array,
): Promise<{ y: Float32Array; dx: Float32Array }> {
  const ctx = gpu();
  const [bufQkv, bufG, bufPos] = await Promise.all([
    ctx.storageFrom('qkv', qkv),
    ctx.storageFrom('dQkv', g),
    ctx.storageFrom('pos', pos),
  ]);
  const rope = await prepareRope(ctx, { pos: bufPos, qkv: bufQkv, dQkv: bufG }, shape, options);
  expect(rope.forward).toHaveLength(1);
  expect(rope.backward).toHaveLength(1);
  await ctx.run([...rope.forward, ...rope.backward]);
  const [y, dx] = await Promise.all([ctx.readF32(bufQkv), ctx.readF32(bufG)]);
  rope.destroy();
  for (const b of [bufQkv, bufG, bufPos]) b.destroy();
  return { y, dx };
}

interface Case {
  name: string;
  shape: RopeShape;
  options: RopeOptions;
  pos: (rng: Rng, T: number) => Int32Array;
}

const grouped = (T: number, nHead: number, nKvHead: number, headDim: number): RopeShape => ({
  T,
  nHead,
  nKvHead,
  headDim,
  layout: ropeQkvLayout('grouped', nHead, nKvHead, headDim),
});

const packed =
  (maxLength: number, padding = 0) =>
  (rng: Rng, T: number) =>
    packedPositions(rng, T, maxLength, padding);

const CASES: Case[] = [
  // GPT-BigCode's multi_query layout [Q | K | V]: (n_head + 2)·hd per row.
  {
    name: 'MQA 4/1 d64 θ1e4 packed',
    shape: grouped(300, 4, 1, 64),
    options: { theta: 1e4 },
    pos: packed(60, 7),
  },
  {
    name: 'GQA 8/2 d128 θ1e6 packed',
    shape: grouped(129, 8, 2, 128),
    options: { theta: 1e6 },
    pos: packed(50),
  },
  {
    name: 'MHA 3/3 d64 interleaved (GPT-BigCode) θ1e4 scaling 2',
    shape: { T: 77, nHead: 3, nKvHead: 3, headDim: 64, layout: ropeQkvLayout('interleaved', 3, 3, 64) },
    options: { theta: 1e4, scaling: 2 },
    pos: packed(30),
  },
  { name: 'MHA 2/2 d8 θ1e4', shape: grouped(37, 2, 2, 8), options: { theta: 1e4 }, pos: packed(9, 2) },
  {
    name: 'GQA 6/3 d8 θ1e6 T=1',
    shape: grouped(1, 6, 3, 8),
    options: { theta: 1e6 },
    pos: () => Int32Array.of(5),
  },
  {
    // Gaps between heads and unused columns around them: only head elements may change.
    name: 'custom padded layout d8',
    shape: {
      T: 45,
      nHead: 2,
      nKvHead: 1,
      headDim: 8,
      layout: { rowStride: 37, qOffset: 1, qHeadStride: 9, kOffset: 19, kHeadStride: 8 },
    },
    options: { theta: 1e4 },
    pos: packed(12, 3),
  },
  {
    // One function of 4097 tokens: positions 0..4096, the longest this suite checks against float64.
    name: 'MQA 2/1 d128 θ1e4 positions 0..4096',
    shape: grouped(4097, 2, 1, 128),
    options: { theta: 1e4 },
    pos: (_rng, T) => Int32Array.from({ length: T }, (_, t) => t),
  },
  {
    // Positions unrelated to the token index, up to 4096, θ of Qwen2 and linear scaling.
    name: 'GQA 4/2 d64 θ1e6 scaling 2 random positions ≤ 4096',
    shape: grouped(300, 4, 2, 64),
    options: { theta: 1e6, scaling: 2 },
    pos: (rng, T) => Int32Array.from({ length: T }, () => rng.int(4097)),
  },
];

describe('rope on the real adapter', () => {
  for (const c of CASES) {
    it(`${c.name}: forward and backward vs float64, in place, V untouched`, async () => {
      const rng = new Rng(c.shape.T * 31 + c.shape.headDim);
      const n = rows(c.shape.T, c.shape.layout);
      const qkv = randomArray(rng, n, 2);
      const g = randomArray(rng, n, 3);
      const pos = c.pos(rng, c.shape.T);
      const { y, dx } = await runRope(c.shape, c.options, qkv, g, pos);
      for (const [input, got, direction] of [
        [qkv, y, 'forward'],
        [g, dx, 'backward'],
      ] as const) {
        const e = pairErrors(input, got, pos, c.shape, c.options, direction);
        expect(e.kernel, direction).toBeLessThan(KERNEL_TOLERANCE);
        expect(e.exactRatio, direction).toBeLessThan(1);
        // A rotation: each pair's norm is kept up to f32 rounding.
        expect(e.norm, direction).toBeLessThan(KERNEL_TOLERANCE);
        expect(e.changedOther, direction).toBe(0);
      }
    });
  }

  it('multi-query grouped layout is GPT-BigCode multi_query row: [Q heads | K | V]', () => {
    expect(ropeQkvLayout('grouped', 4, 1, 64)).toEqual({
      rowStride: (4 + 2) * 64,
      qOffset: 0,
      qHeadStride: 64,
      kOffset: 4 * 64,
      kHeadStride: 64,
    });
    // shaders/attention.wgsl multi-head: q at 3h·hd, k at (3h + 1)·hd.
    expect(ropeQkvLayout('interleaved', 2, 2, 8)).toEqual({
      rowStride: 48,
      qOffset: 0,
      qHeadStride: 24,
      kOffset: 8,
      kHeadStride: 24,
    });
  });

  it('positions past 4096 (to 32767): the kernel stays exact to the f32 angle, the angle itself drifts', async () => {
    const shape = grouped(64, 2, 1, 64);
    const options = { theta: 1e4 };
    const rng = new Rng(7);
    const pos = Int32Array.from({ length: 64 }, (_, t) => 32767 - 511 * t);
    const qkv = randomArray(rng, rows(64, shape.layout), 1);
    const { y } = await runRope(shape, options, qkv, new Float32Array(qkv.length), pos);
    const e = pairErrors(qkv, y, pos, shape, options, 'forward', LONG_KERNEL_TOLERANCE);
    expect(e.kernel).toBeLessThan(LONG_KERNEL_TOLERANCE);
    expect(e.exactRatio).toBeLessThan(1);
    expect(e.norm).toBeLessThan(KERNEL_TOLERANCE);
    // Against float64 the error is the f32 angle's (documented above): well above the kernel's own.
    const exact = ropeForwardRef(qkv, pos, shape, options);
    const worst = Math.max(...Array.from(y, (v, i) => Math.abs(v - exact[i])));
    expect(worst).toBeGreaterThan(1e-4);
  });

  it('backward undoes forward on the GPU (R(−a)·R(a) = I)', async () => {
    const ctx = gpu();
    const shape = grouped(200, 8, 2, 128);
    const options = { theta: 1e6 };
    const rng = new Rng(3);
    const qkv = randomArray(rng, rows(200, shape.layout), 1);
    const pos = packedPositions(rng, 200, 80);
    const [buf, bufPos] = await Promise.all([ctx.storageFrom('qkv', qkv), ctx.storageFrom('pos', pos)]);
    // The same buffer as qkv and dQkv: forward then backward in place.
    const rope = await prepareRope(ctx, { pos: bufPos, qkv: buf, dQkv: buf }, shape, options);
    await ctx.run([...rope.forward, ...rope.backward]);
    const back = await ctx.readF32(buf);
    let worst = 0;
    for (let i = 0; i < qkv.length; i++) worst = Math.max(worst, Math.abs(back[i] - qkv[i]));
    expect(worst).toBeLessThan(2 * KERNEL_TOLERANCE);
    rope.destroy();
    buf.destroy();
    bufPos.destroy();
  });

  it('linear scaling 2 at position 2p equals no scaling at p, bit for bit', async () => {
    // inv_freq/2 is exact in f32, and f32(2p)·(f/2) = f32(p)·f exactly: same angle, same bits.
    const shape = grouped(50, 2, 1, 64);
    const rng = new Rng(11);
    const qkv = randomArray(rng, rows(50, shape.layout), 1);
    const pos = Int32Array.from({ length: 50 }, () => rng.int(2000));
    const zeros = new Float32Array(qkv.length);
    const scaled = await runRope(
      shape,
      { theta: 1e4, scaling: 2 },
      qkv,
      zeros,
      pos.map((p) => 2 * p),
    );
    const plain = await runRope(shape, { theta: 1e4 }, qkv, zeros, pos);
    expect(Array.from(scaled.y)).toEqual(Array.from(plain.y));
    const unscaled = await runRope(
      shape,
      { theta: 1e4 },
      qkv,
      zeros,
      pos.map((p) => 2 * p),
    );
    expect(Array.from(unscaled.y)).not.toEqual(Array.from(plain.y));
  });

  it('setFrequencies switches θ and scaling without rebuilding the dispatches', async () => {
    const ctx = gpu();
    const shape = grouped(40, 4, 2, 64);
    const rng = new Rng(5);
    const qkv = randomArray(rng, rows(40, shape.layout), 1);
    const pos = packedPositions(rng, 40, 40);
    const [buf, bufPos] = await Promise.all([ctx.storageFrom('qkv', qkv), ctx.storageFrom('pos', pos)]);
    const rope = await prepareRope(ctx, { pos: bufPos, qkv: buf }, shape, { theta: 1e4 });
    expect(rope.backward).toEqual([]);
    expect(rope.invFreq[1]).toBe(Math.fround(1e4 ** (-2 / 64)));
    const next = { theta: 1e6, scaling: 4 };
    rope.setFrequencies(next);
    expect(rope.invFreq[1]).toBe(Math.fround(1 / (4 * 1e6 ** (2 / 64))));
    await ctx.run(rope.forward);
    const e = pairErrors(qkv, await ctx.readF32(buf), pos, shape, next, 'forward');
    expect(e.kernel).toBeLessThan(KERNEL_TOLERANCE);
    rope.destroy();
    buf.destroy();
    bufPos.destroy();
  });

  it('rejects bad shapes and options with typed errors', async () => {
    const ctx = gpu();
    const buf = await ctx.storage('x', 4096);
    const pos = await ctx.storage('pos', 1024);
    const at = (shape: RopeShape, options: RopeOptions = { theta: 1e4 }) =>
      prepareRope(ctx, { pos, qkv: buf }, shape, options);
    const base = grouped(4, 4, 2, 8);
    const bad: [RopeShape, RegExp][] = [
      [{ ...base, headDim: 7, layout: ropeQkvLayout('grouped', 4, 2, 7) }, /head_dim must be even/],
      [
        { ...base, nKvHead: 3, layout: ropeQkvLayout('grouped', 4, 3, 8) },
        /n_kv_head 3 must divide n_head 4/,
      ],
      [
        { ...base, nKvHead: 8, layout: ropeQkvLayout('grouped', 4, 8, 8) },
        /n_kv_head 8 must divide n_head 4/,
      ],
      [{ ...base, nKvHead: 0 }, /bad nKvHead = 0/],
      [{ ...base, layout: { ...base.layout, kOffset: 28 } }, /overlap/],
      [{ ...base, layout: { ...base.layout, rowStride: 40 } }, /outside the row of 40/],
      [{ ...base, T: 200 }, /qkv holds 4096 bytes/],
      [{ ...base, T: 300 }, /pos holds 1024 bytes/],
    ];
    for (const [shape, message] of bad) {
      await expect(at(shape), String(message)).rejects.toThrow(message);
      await expect(at(shape)).rejects.toBeInstanceOf(ShapeError);
    }
    await expect(at(base, { theta: 0 })).rejects.toThrow(/bad rope_theta 0/);
    await expect(at(base, { theta: 1e4, scaling: -1 })).rejects.toThrow(/bad rope_scaling factor -1/);
    expect(() => ropeQkvLayout('interleaved', 4, 2, 8)).toThrow(ShapeError);
    buf.destroy();
    pos.destroy();
  });
});

describe('rope float64 reference', () => {
  const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
    let s = 0;
    for (let i = 0; i < a.length; i++) s += a[i] * b[i];
    return s;
  };

  it('pairs element i with i + d/2 (rotate_half), angle pos·θ^(−2i/d)', () => {
    // d = 4, one Q head, one K head, one V head; position 3, θ 100: a₀ = 3, a₁ = 3/10.
    const shape = grouped(1, 1, 1, 4);
    const x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    const y = ropeForwardRef(x, [3], shape, { theta: 100 });
    const [c0, s0, c1, s1] = [Math.cos(3), Math.sin(3), Math.cos(0.3), Math.sin(0.3)];
    const head = (v: number[]) => [
      v[0] * c0 - v[2] * s0,
      v[1] * c1 - v[3] * s1,
      v[2] * c0 + v[0] * s0,
      v[3] * c1 + v[1] * s1,
    ];
    const want = [...head(x.slice(0, 4)), ...head(x.slice(4, 8)), 9, 10, 11, 12];
    want.forEach((w, i) => expect(y[i]).toBeCloseTo(w, 14));
    // Position 0 is the identity.
    expect(Array.from(ropeForwardRef(x, [0], shape, { theta: 100 }))).toEqual(x);
  });

  for (const [name, shape] of [
    ['MQA', grouped(20, 4, 1, 8)],
    ['GQA', grouped(20, 8, 2, 16)],
    [
      'MHA interleaved',
      { T: 20, nHead: 3, nKvHead: 3, headDim: 8, layout: ropeQkvLayout('interleaved', 3, 3, 8) },
    ],
  ] as [string, RopeShape][]) {
    it(`${name}: backward is the adjoint, undoes forward, keeps norms`, () => {
      const rng = new Rng(name.length);
      const n = rows(shape.T, shape.layout);
      const x = Float64Array.from({ length: n }, () => rng.normal());
      const g = Float64Array.from({ length: n }, () => rng.normal());
      const pos = packedPositions(rng, shape.T, 6);
      const options = { theta: 1e4, scaling: 2 };
      const fx = ropeForwardRef(x, pos, shape, options);
      const bg = ropeBackwardRef(g, pos, shape, options);
      // ⟨rope(x), g⟩ = ⟨x, rope_backward(g)⟩.
      expect(Math.abs(dot(fx, g) - dot(x, bg))).toBeLessThan(1e-12 * Math.sqrt(dot(x, x) * dot(g, g)));
      const back = ropeBackwardRef(fx, pos, shape, options);
      back.forEach((v, i) => expect(Math.abs(v - x[i])).toBeLessThan(1e-14));
      expect(Math.abs(dot(fx, fx) - dot(x, x))).toBeLessThan(1e-12 * dot(x, x));
    });
  }

  it('inv_freq: 1 / (s·θ^(2i/d))', () => {
    const f = ropeInvFreq(8, { theta: 1e4, scaling: 2 });
    [0.5, 0.05, 0.005, 0.0005].forEach((v, i) => expect(f[i] / v).toBeCloseTo(1, 14));
  });
});
