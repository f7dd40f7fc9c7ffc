import { describe, expect, it } from 'vitest';
import {
  attentionBackward,
  attentionForward,
  attentionKvHeads,
  attentionPartialsBytes,
  attentionVariant,
  flashBackwardBytes,
  flashForwardBytes,
  qkvWidth,
  suggestHeadGroups,
  uploadAttentionMask,
  writeAttentionMask,
  type AttentionKernelShape,
} from '../../src/engine/kernels/attention.ts';
import type { KernelSet } from '../../src/engine/gpu/context.ts';
import type { GpuContext } from '../../src/engine/gpu/index.ts';
import { resolveHeadGroups } from '../../src/engine/model/sizes.ts';
import {
  attends,
  attentionBackwardRef,
  attentionForwardRef,
  attentionWork,
  buildAttentionMask,
  qkvLayout,
  segmentIdsFromLengths,
  validateAttentionMask,
  type AttentionMask,
  type AttentionMode,
  type AttentionShape,
} from '../../src/engine/reference/attention.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// f32 dot products of hd terms, exp/log with a few ulp of relative error (WGSL allows 3 + 2|x| ulp for
// exp) and softmax sums over up to ~100 keys: errors stay around 1e-6 of the output scale; 2e-5 is
// well above that yet far below what a wrong mask entry or a missing key tile does (≥ 1e-2).
const FORWARD_TOLERANCE = 2e-5;
// Backward adds the cancellation in dS = P·(dP − Δ) and sums over up to T·n_head terms (MQA dK/dV).
const BACKWARD_TOLERANCE = 1e-4;

interface Run {
  out: Float32Array;
  lse: Float32Array;
  dqkv: Float32Array;
}

/** Forward and backward on the adapter; outputs start as NaN so unwritten elements show. */
async function runAttention(
  ctx: GpuContext,
  qkv: Float32Array,
  dOut: Float32Array,
  mask: AttentionMask,
  shape: AttentionKernelShape,
  kernels: KernelSet,
  headGroups = 1,
): Promise<Run> {
  const D = shape.nHead * shape.headDim;
  const nan = (n: number): Float32Array => new Float32Array(n).fill(NaN);
  const partialsBytes = attentionPartialsBytes(shape, headGroups);
  const buffers = await Promise.all([
    ctx.storageFrom('qkv', qkv),
    uploadAttentionMask(ctx, mask),
    ctx.storageFrom('out', nan(shape.T * D)),
    ctx.storageFrom('lse', nan(shape.T * shape.nHead)),
    ctx.storageFrom('dOut', dOut),
    ctx.storageFrom('dqkv', nan(qkv.length)),
    ctx.storageFrom('partials', nan(Math.max(1, partialsBytes / 4))),
  ]);
  const [bq, bm, bo, bl, bd, bg, bp] = buffers;
  const fwd = await attentionForward(ctx, bq, bm, bo, bl, shape, { kernels });
  const bwd = await attentionBackward(ctx, bq, bm, bo, bd, bl, bg, shape, {
    headGroups,
    partials: bp,
    kernels,
  });
  // The variant in use shows in the labels: ' flash' for the gpu kernels, ' cpu-fallback' when they
  // do not fit workgroup memory, nothing for the cpu kernels.
  const variant = attentionVariant(ctx, shape, kernels);
  const suffix = variant.tiles ? ' flash' : variant.fallback ? ' cpu-fallback' : '';
  for (const d of [fwd, ...bwd.slice(0, 2)]) expect(d.label.endsWith(suffix), d.label).toBe(true);
  // And the head layout: ' mqa', ' gqa<K/V heads>', nothing for the interleaved multi-head layout.
  const kv = attentionKvHeads(shape);
  const layout = kv === 0 ? '' : kv === 1 ? ' mqa' : ` gqa${kv}`;
  expect(fwd.label, fwd.label).toContain(`x${shape.headDim}${layout}${suffix}`);
  expect(bwd.length).toBe(headGroups > 1 ? 3 : 2);
  await ctx.run([fwd, ...bwd]);
  const run = { out: await ctx.readF32(bo), lse: await ctx.readF32(bl), dqkv: await ctx.readF32(bg) };
  for (const b of buffers) b.destroy();
  return run;
}

/** Every element written (buffers started as NaN) and close to the float64 reference. */
function expectMatchesReference(
  got: Run,
  qkv: Float32Array,
  dOut: Float32Array,
  mask: AttentionMask,
  shape: AttentionKernelShape,
): void {
  for (const [name, values] of Object.entries(got)) {
    const bad = values.findIndex((v: number) => !Number.isFinite(v));
    expect(bad, `${name}[${bad}] is not finite`).toBe(-1);
  }
  const ref = attentionForwardRef(qkv, mask, shape);
  expect(compare(got.out, ref.out).maxRel).toBeLessThan(FORWARD_TOLERANCE);
  expect(compare(got.lse, ref.lse).maxRel).toBeLessThan(FORWARD_TOLERANCE);
  const dRef = attentionBackwardRef(qkv, dOut, mask, shape);
  expect(compare(got.dqkv, dRef).maxRel).toBeLessThan(BACKWARD_TOLERANCE);
}

interface Case {
  name: string;
  nHead: number;
  headDim: number;
  multiQuery: boolean;
  /** Grouped-query layout: K/V heads. */
  kvHeads?: number;
  packLength: number;
  packs: number[][];
  mode: AttentionMode;
  slidingWindow?: number;
  /** Range of the random q, k, v values (larger: sharper softmax). */
  scale?: number;
}

const cases: Case[] = [
  {
    // Segments straddling the 16-token tiles, length-1 segments, a segment filling a whole pack.
    name: 'MQA hd=8, packed, straddling and length-1 segments',
    nHead: 4,
    headDim: 8,
    multiQuery: true,
    packLength: 40,
    packs: [[1, 17, 5, 1, 16], [40]],
    mode: 'packed',
  },
  {
    name: 'MHA hd=5, packed, three packs with padding',
    nHead: 3,
    headDim: 5,
    multiQuery: false,
    packLength: 23,
    packs: [[7, 9], [1, 1, 1, 20], [23]],
    mode: 'packed',
  },
  {
    name: 'MQA hd=12, paper mode, padding at the end of a pack',
    nHead: 2,
    headDim: 12,
    multiQuery: true,
    packLength: 37,
    packs: [[10, 15], [37]],
    mode: 'paper',
    scale: 2,
  },
  {
    name: 'MHA hd=64, packed, padding at the end',
    nHead: 2,
    headDim: 64,
    multiQuery: false,
    packLength: 70,
    packs: [[33, 1, 30]],
    mode: 'packed',
  },
  {
    name: 'MQA hd=128, packed, sharp softmax',
    nHead: 3,
    headDim: 128,
    multiQuery: true,
    packLength: 48,
    packs: [[20, 28]],
    mode: 'packed',
    scale: 3,
  },
  {
    name: 'MHA hd=130, paper mode',
    nHead: 1,
    headDim: 130,
    multiQuery: false,
    packLength: 19,
    packs: [[5, 6], [19]],
    mode: 'paper',
  },
  {
    name: 'MQA hd=256 (the largest supported), paper mode',
    nHead: 2,
    headDim: 256,
    multiQuery: true,
    packLength: 21,
    packs: [[5, 7]],
    mode: 'paper',
  },
  {
    name: 'MQA hd=20, a single token',
    nHead: 2,
    headDim: 20,
    multiQuery: true,
    packLength: 1,
    packs: [[1]],
    mode: 'packed',
  },
  {
    name: 'GQA 4 heads / 2 K/V heads, hd=8, packed, several segments and padding',
    nHead: 4,
    kvHeads: 2,
    headDim: 8,
    multiQuery: false,
    packLength: 40,
    packs: [
      [1, 17, 5, 9],
      [3, 30],
    ],
    mode: 'packed',
  },
  {
    name: 'GQA 6 heads / 3 K/V heads, hd=12, packed, three packs with padding',
    nHead: 6,
    kvHeads: 3,
    headDim: 12,
    multiQuery: false,
    packLength: 23,
    packs: [[7, 9], [1, 1, 1, 20], [23]],
    mode: 'packed',
    scale: 2,
  },
  {
    name: 'GQA 8 heads / 2 K/V heads, hd=64, paper mode, padding at the end',
    nHead: 8,
    kvHeads: 2,
    headDim: 64,
    multiQuery: false,
    packLength: 35,
    packs: [[10, 15], [35]],
    mode: 'paper',
  },
  {
    name: 'grouped layout with kvHeads = nHead (multi-head), hd=20, packed',
    nHead: 3,
    kvHeads: 3,
    headDim: 20,
    multiQuery: false,
    packLength: 37,
    packs: [[10, 1, 15], [37]],
    mode: 'packed',
  },
  {
    name: 'sliding window 6 (shorter than most segments), MQA hd=8, packed',
    nHead: 4,
    headDim: 8,
    multiQuery: true,
    packLength: 40,
    packs: [[1, 17, 5, 1, 16], [40]],
    mode: 'packed',
    slidingWindow: 6,
  },
  {
    name: 'sliding window 4, MHA hd=5, paper mode, three packs with padding',
    nHead: 3,
    headDim: 5,
    multiQuery: false,
    packLength: 23,
    packs: [[7, 9], [1, 1, 1, 20], [23]],
    mode: 'paper',
    slidingWindow: 4,
  },
  {
    name: 'sliding window 19 (across tiles), GQA 6 heads / 2 K/V heads, hd=16, packed',
    nHead: 6,
    kvHeads: 2,
    headDim: 16,
    multiQuery: false,
    packLength: 64,
    packs: [[40, 3, 20], [64]],
    mode: 'packed',
    slidingWindow: 19,
    scale: 2,
  },
];

// The first use of each head_dim bucket (hd ≤ 32, 64, 128, 256) compiles the gpu set's three flash
// pipelines: with a cold shader cache on a loaded 2-core software adapter (lavapipe) that has taken
// over a minute, past vitest's default timeout.
const TIMEOUT = 600_000;

for (const kernels of ['cpu', 'gpu'] as const)
  describe(
    `attention (f32, flash-style, packed masks) on the real adapter (${kernels} kernels)`,
    { timeout: TIMEOUT },
    () => {
      for (const c of cases) {
        it(c.name, async () => {
          const ctx = gpu();
          const mask = buildAttentionMask(
            segmentIdsFromLengths(c.packs, c.packLength),
            c.packLength,
            c.mode,
            c.slidingWindow,
          );
          const shape: AttentionKernelShape = {
            T: mask.T,
            nHead: c.nHead,
            headDim: c.headDim,
            multiQuery: c.multiQuery,
            kvHeads: c.kvHeads,
          };
          const rng = new Rng(mask.T * 7919 + c.headDim * 31 + c.nHead);
          const qkv = randomArray(rng, mask.T * qkvWidth(shape), c.scale ?? 1);
          const dOut = randomArray(rng, mask.T * c.nHead * c.headDim);
          const got = await runAttention(ctx, qkv, dOut, mask, shape, kernels);
          expectMatchesReference(got, qkv, dOut, mask, shape);
          // Padding tokens: exactly zero output and gradient (not just small).
          const width = qkvWidth(shape);
          const D = c.nHead * c.headDim;
          for (let t = 0; t < mask.T; t++) {
            if (mask.segment[t] !== -1) continue;
            expect(got.out.subarray(t * D, (t + 1) * D).every((v) => v === 0)).toBe(true);
            expect(got.dqkv.subarray(t * width, (t + 1) * width).every((v) => v === 0)).toBe(true);
            expect(got.lse.subarray(t * c.nHead, (t + 1) * c.nHead).every((v) => v === 0)).toBe(true);
          }
        });
      }

      it('random packings (both modes, both layouts, hd 1..40) match the reference', async () => {
        const ctx = gpu();
        const rng = new Rng(2024);
        for (let trial = 0; trial < 16; trial++) {
          const packLength = 1 + rng.int(50);
          const packs = Array.from({ length: 1 + rng.int(3) }, () => {
            const lengths: number[] = [];
            let used = 0;
            // Mostly short functions, sometimes one long one; leave padding at the end half the time.
            while (used < packLength) {
              const len = 1 + rng.int(rng.next() < 0.3 ? packLength : 6);
              if (used + len > packLength || (lengths.length > 0 && rng.next() < 0.1)) break;
              lengths.push(len);
              used += len;
            }
            return lengths.length > 0 ? lengths : [packLength];
          });
          const mode: AttentionMode = rng.next() < 0.5 ? 'packed' : 'paper';
          const mask = buildAttentionMask(segmentIdsFromLengths(packs, packLength), packLength, mode);
          const shape: AttentionKernelShape = {
            T: mask.T,
            nHead: 1 + rng.int(3),
            headDim: 1 + rng.int(40),
            multiQuery: rng.next() < 0.5,
          };
          const qkv = randomArray(rng, mask.T * qkvWidth(shape), 2);
          const dOut = randomArray(rng, mask.T * shape.nHead * shape.headDim);
          const got = await runAttention(ctx, qkv, dOut, mask, shape, kernels);
          try {
            expectMatchesReference(got, qkv, dOut, mask, shape);
          } catch (error) {
            throw new Error(`trial ${trial}: ${JSON.stringify({ packLength, packs, mode, shape })}`, {
              cause: error,
            });
          }
        }
      });

      it('random packings with grouped-query heads, head groups and sliding windows match the reference', async () => {
        const ctx = gpu();
        const rng = new Rng(2025);
        for (let trial = 0; trial < 12; trial++) {
          const packLength = 1 + rng.int(50);
          const packs = Array.from({ length: 1 + rng.int(3) }, () => {
            const lengths: number[] = [];
            let used = 0;
            while (used < packLength) {
              const len = 1 + rng.int(rng.next() < 0.3 ? packLength : 8);
              if (used + len > packLength || (lengths.length > 0 && rng.next() < 0.1)) break;
              lengths.push(len);
              used += len;
            }
            return lengths.length > 0 ? lengths : [packLength];
          });
          const mode: AttentionMode = rng.next() < 0.5 ? 'packed' : 'paper';
          const window = rng.next() < 0.5 ? undefined : 1 + rng.int(20);
          const mask = buildAttentionMask(segmentIdsFromLengths(packs, packLength), packLength, mode, window);
          const nHead = [2, 3, 4, 6, 8][rng.int(5)];
          const divisors = [1, 2, 3, 4, 6, 8].filter((d) => nHead % d === 0);
          const kvHeads = divisors[rng.int(divisors.length)];
          const shape: AttentionKernelShape = {
            T: mask.T,
            nHead,
            headDim: 1 + rng.int(40),
            multiQuery: false,
            kvHeads,
          };
          const groups = 1 + rng.int(nHead / kvHeads);
          const qkv = randomArray(rng, mask.T * qkvWidth(shape), 2);
          const dOut = randomArray(rng, mask.T * shape.nHead * shape.headDim);
          const got = await runAttention(ctx, qkv, dOut, mask, shape, kernels, groups);
          try {
            expectMatchesReference(got, qkv, dOut, mask, shape);
          } catch (error) {
            const setup = { packLength, packs, mode, window, shape, groups };
            throw new Error(`trial ${trial}: ${JSON.stringify(setup)}`, { cause: error });
          }
        }
      });

      it('padding rows may hold anything (NaN): real rows and zero padding outputs are unaffected', async () => {
        const ctx = gpu();
        const L = 29;
        const mask = buildAttentionMask(segmentIdsFromLengths([[3, 11, 1], [20]], L), L, 'paper');
        const layouts = [
          { nHead: 3, multiQuery: true, seed: 21, groups: 3 },
          { nHead: 3, multiQuery: false, seed: 22, groups: 1 },
          { nHead: 4, multiQuery: false, kvHeads: 2, seed: 23, groups: 2 },
        ];
        for (const { seed, groups, ...heads } of layouts) {
          const shape: AttentionKernelShape = { T: 2 * L, headDim: 10, ...heads };
          const width = qkvWidth(shape);
          const D = shape.nHead * 10;
          const rng = new Rng(seed);
          const qkv = randomArray(rng, shape.T * width);
          const dOut = randomArray(rng, shape.T * D);
          for (let t = 0; t < shape.T; t++) {
            if (mask.segment[t] !== -1) continue;
            qkv.fill(NaN, t * width, (t + 1) * width);
            dOut.fill(NaN, t * D, (t + 1) * D);
          }
          const got = await runAttention(ctx, qkv, dOut, mask, shape, kernels, groups);
          expectMatchesReference(got, qkv, dOut, mask, shape);
        }
      });

      it('query tiles never read key tiles outside their range (and key tiles never read other queries)', async () => {
        // One pack is a single function full of NaN, on whole tiles; the other pack must come out exactly
        // as if alone. A pass that visited the NaN pack's tiles from the clean one would pick up 0·NaN = NaN:
        // with the NaN pack first that checks the key ranges of query tiles (forward, dQ) and the lower end
        // of the dK/dV query ranges; with it last, the upper end of the dK/dV query ranges.
        const ctx = gpu();
        const L = 32;
        const alone = buildAttentionMask(segmentIdsFromLengths([[5, 27]], L), L, 'packed');
        for (const nanFirst of [true, false]) {
          const mask = buildAttentionMask(
            segmentIdsFromLengths(nanFirst ? [[32], [5, 27]] : [[5, 27], [32]], L),
            L,
            'packed',
          );
          const nanPack = nanFirst ? 0 : 1;
          const clean = 1 - nanPack;
          for (const [multiQuery, kvHeads, seed] of [
            [true, undefined, 31],
            [false, undefined, 32],
            [false, 1, 33], // grouped layout: one K/V head of two query heads
          ] as const) {
            const shape: AttentionKernelShape = { T: 2 * L, nHead: 2, headDim: 6, multiQuery, kvHeads };
            const width = qkvWidth(shape);
            const D = 12;
            const rng = new Rng(seed);
            const qkv = randomArray(rng, shape.T * width);
            const dOut = randomArray(rng, shape.T * D);
            qkv.fill(NaN, nanPack * L * width, (nanPack + 1) * L * width);
            dOut.fill(NaN, nanPack * L * D, (nanPack + 1) * L * D);
            const got = await runAttention(ctx, qkv, dOut, mask, shape, kernels);
            const rows = (a: Float32Array, n: number): Float32Array =>
              a.slice(clean * L * n, (clean + 1) * L * n);
            const second: Run = { out: rows(got.out, D), lse: rows(got.lse, 2), dqkv: rows(got.dqkv, width) };
            expectMatchesReference(second, rows(qkv, width), rows(dOut, D), alone, { ...shape, T: L });
          }
        }
      });

      it('works for any mask: sliding-window key_start and a loose query_end bound', async () => {
        const ctx = gpu();
        const T = 45;
        const window = 7;
        const segment = new Int32Array(T);
        segment.fill(-1, 40);
        const mask: AttentionMask = {
          T,
          segment,
          keyStart: Int32Array.from({ length: T }, (_, t) => Math.max(0, t - window + 1)),
          queryEnd: new Int32Array(T).fill(T), // an upper bound is enough
        };
        for (const [multiQuery, kvHeads, seed] of [
          [true, undefined, 5],
          [false, undefined, 6],
          [false, 2, 7],
        ] as const) {
          const shape: AttentionKernelShape = { T, nHead: 2, headDim: 9, multiQuery, kvHeads };
          const rng = new Rng(seed);
          const qkv = randomArray(rng, T * qkvWidth(shape), 2);
          const dOut = randomArray(rng, T * 18);
          expectMatchesReference(
            await runAttention(ctx, qkv, dOut, mask, shape, kernels),
            qkv,
            dOut,
            mask,
            shape,
          );
        }
      });

      it('backward is deterministic (multi-query dK/dV summed without atomics), with and without head groups', async () => {
        const ctx = gpu();
        const mask = buildAttentionMask(segmentIdsFromLengths([[30, 3, 14]], 50), 50, 'packed');
        const shape: AttentionKernelShape = { T: 50, nHead: 6, headDim: 16, multiQuery: true };
        const rng = new Rng(9);
        const qkv = randomArray(rng, 50 * qkvWidth(shape));
        const dOut = randomArray(rng, 50 * 96);
        // 4 groups of 6 heads: uneven groups (1, 2, 1, 2 heads).
        for (const groups of [1, 4]) {
          const a = await runAttention(ctx, qkv, dOut, mask, shape, kernels, groups);
          const b = await runAttention(ctx, qkv, dOut, mask, shape, kernels, groups);
          expect(Array.from(b.dqkv)).toEqual(Array.from(a.dqkv));
          expectMatchesReference(a, qkv, dOut, mask, shape);
        }
      });

      it('multi-query head groups (dK/dV partials + ordered reduce) match the reference', async () => {
        const ctx = gpu();
        const L = 41;
        const mask = buildAttentionMask(segmentIdsFromLengths([[17, 1, 9], [41]], L), L, 'packed');
        const shape: AttentionKernelShape = { T: 2 * L, nHead: 5, headDim: 24, multiQuery: true };
        const rng = new Rng(12);
        const qkv = randomArray(rng, shape.T * qkvWidth(shape), 2);
        const dOut = randomArray(rng, shape.T * 5 * 24);
        for (const groups of [2, 3, 5]) {
          expectMatchesReference(
            await runAttention(ctx, qkv, dOut, mask, shape, kernels, groups),
            qkv,
            dOut,
            mask,
            shape,
          );
        }
        expect(suggestHeadGroups(shape, 1024)).toBe(5);
        expect(suggestHeadGroups(shape, 12)).toBe(2); // 6 key tiles
        expect(suggestHeadGroups({ ...shape, multiQuery: false })).toBe(1);
        const small = await ctx.storage('small', 16);
        const dummy = await ctx.storage('dummy', 16);
        await expect(
          attentionBackward(ctx, dummy, dummy, dummy, dummy, dummy, dummy, shape, {
            headGroups: 2,
            partials: small,
          }),
        ).rejects.toThrow(/partials workspace of 31488 bytes/);
        await expect(
          attentionBackward(ctx, dummy, dummy, dummy, dummy, dummy, dummy, shape, { headGroups: 6 }),
        ).rejects.toThrow(/headGroups/);
        small.destroy();
        dummy.destroy();
      });

      it('grouped-query head groups (per K/V head partials + ordered reduce) match the reference', async () => {
        const ctx = gpu();
        const L = 41;
        const mask = buildAttentionMask(segmentIdsFromLengths([[17, 1, 9], [41]], L), L, 'packed', 12);
        // G = 4 query heads per K/V head (hpw 4), and G = 3 (a spare row in the last chunk of heads).
        for (const [nHead, kvHeads, allGroups] of [
          [8, 2, [1, 2, 3, 4]],
          [6, 2, [1, 2, 3]],
        ] as const) {
          const shape: AttentionKernelShape = { T: 2 * L, nHead, headDim: 24, multiQuery: false, kvHeads };
          const rng = new Rng(13 + nHead);
          const qkv = randomArray(rng, shape.T * qkvWidth(shape), 2);
          const dOut = randomArray(rng, shape.T * nHead * 24);
          for (const groups of allGroups) {
            expectMatchesReference(
              await runAttention(ctx, qkv, dOut, mask, shape, kernels, groups),
              qkv,
              dOut,
              mask,
              shape,
            );
          }
        }
        const shape: AttentionKernelShape = { T: 82, nHead: 8, headDim: 24, multiQuery: false, kvHeads: 2 };
        expect(attentionPartialsBytes(shape, 3)).toBe(3 * 82 * 2 * 2 * 24 * 4);
        expect(attentionPartialsBytes(shape, 1)).toBe(0);
        expect(suggestHeadGroups(shape, 1024)).toBe(4); // at most G = 4
        expect(suggestHeadGroups(shape, 24)).toBe(2); // 6 key tiles × 2 K/V heads
        expect(suggestHeadGroups({ ...shape, kvHeads: 8 })).toBe(1);
        expect(resolveHeadGroups('auto', shape)).toBe(4);
        expect(() => resolveHeadGroups(5, shape)).toThrow(/\[1, 4\]/);
        const dummy = await ctx.storage('dummy', 16);
        await expect(
          attentionBackward(ctx, dummy, dummy, dummy, dummy, dummy, dummy, shape, { headGroups: 5 }),
        ).rejects.toThrow(/headGroups must be an integer in \[1, query heads per K\/V head = 4\]/);
        dummy.destroy();
      });

      it('grouped layout with one K/V head is multi-query, bit for bit', async () => {
        const ctx = gpu();
        const L = 30;
        const mask = buildAttentionMask(segmentIdsFromLengths([[12, 5], [30]], L), L, 'packed', 9);
        const mqa: AttentionKernelShape = { T: 2 * L, nHead: 5, headDim: 12, multiQuery: true };
        const grouped: AttentionKernelShape = { ...mqa, multiQuery: false, kvHeads: 1 };
        expect(qkvWidth(grouped)).toBe(qkvWidth(mqa));
        const rng = new Rng(14);
        const qkv = randomArray(rng, mqa.T * qkvWidth(mqa), 2);
        const dOut = randomArray(rng, mqa.T * 60);
        for (const groups of [1, 2]) {
          const a = await runAttention(ctx, qkv, dOut, mask, mqa, kernels, groups);
          const b = await runAttention(ctx, qkv, dOut, mask, grouped, kernels, groups);
          for (const key of ['out', 'lse', 'dqkv'] as const) {
            expect(new Uint8Array(b[key].buffer)).toEqual(new Uint8Array(a[key].buffer));
          }
          expectMatchesReference(b, qkv, dOut, mask, grouped);
        }
      });

      it('prepared dispatches follow a new mask written into the same buffer', async () => {
        const ctx = gpu();
        const L = 33;
        const shape: AttentionKernelShape = { T: 2 * L, nHead: 2, headDim: 7, multiQuery: false };
        const first = buildAttentionMask(segmentIdsFromLengths([[33], [4, 20]], L), L, 'packed');
        const second = buildAttentionMask(
          segmentIdsFromLengths(
            [
              [2, 2, 2],
              [30, 3],
            ],
            L,
          ),
          L,
          'paper',
        );
        const rng = new Rng(11);
        const qkv = randomArray(rng, shape.T * qkvWidth(shape));
        const dOut = randomArray(rng, shape.T * 14);
        const [bq, bo, bl, bd, bg] = await Promise.all([
          ctx.storageFrom('qkv', qkv),
          ctx.storage('out', shape.T * 14 * 4),
          ctx.storage('lse', shape.T * 2 * 4),
          ctx.storageFrom('dOut', dOut),
          ctx.storage('dqkv', qkv.byteLength),
        ]);
        const bm = await uploadAttentionMask(ctx, first);
        const step = [
          await attentionForward(ctx, bq, bm, bo, bl, shape, { kernels }),
          ...(await attentionBackward(ctx, bq, bm, bo, bd, bl, bg, shape, { kernels })),
        ];
        for (const mask of [first, second]) {
          writeAttentionMask(ctx, bm, mask);
          await ctx.run(step);
          const got = { out: await ctx.readF32(bo), lse: await ctx.readF32(bl), dqkv: await ctx.readF32(bg) };
          expectMatchesReference(got, qkv, dOut, mask, shape);
        }
        for (const b of [bq, bo, bl, bd, bg, bm]) b.destroy();
      });

      it('rejects shapes the kernels cannot run', async () => {
        const ctx = gpu();
        const buf = await ctx.storage('x', 16);
        const shape = { T: 4, nHead: 1, headDim: 257, multiQuery: true };
        await expect(attentionForward(ctx, buf, buf, buf, buf, shape)).rejects.toThrow(/head_dim 257/);
        await expect(attentionForward(ctx, buf, buf, buf, buf, { ...shape, headDim: 0 })).rejects.toThrow(
          /headDim/,
        );
        const gqa = { T: 4, nHead: 4, headDim: 8, multiQuery: false, kvHeads: 3 };
        await expect(attentionForward(ctx, buf, buf, buf, buf, gqa)).rejects.toThrow(/kvHeads 3 must divide/);
        await expect(
          attentionForward(ctx, buf, buf, buf, buf, { ...gqa, multiQuery: true, kvHeads: 2 }),
        ).rejects.toThrow(/be 1 with multiQuery/);
        buf.destroy();
      });
    },
  );

describe('attention kernel variants (cpu, gpu = flash) and the fallback', { timeout: TIMEOUT }, () => {
  const limitsOf = (bytes: number) => ({
    kernels: 'gpu' as const,
    adapter: { ...gpu().adapter, limits: { ...gpu().adapter.limits, maxComputeWorkgroupStorageSize: bytes } },
  });

  it('picks the flash tiles that fit workgroup memory, the cpu variant with a reason otherwise', () => {
    const mqa = { nHead: 16, headDim: 128, multiQuery: true };
    expect(attentionVariant(limitsOf(32768), mqa, 'cpu')).toEqual({ kernels: 'cpu' });
    // 32 KiB (lavapipe, most GPUs): 16-row tiles up to hd 128, 8 rows at hd 256.
    expect(attentionVariant(limitsOf(32768), mqa).tiles).toMatchObject({
      d4: 32,
      forwardTile: 16,
      backwardTile: 16,
      headsPerWorkgroup: 4,
    });
    const hd256 = { nHead: 2, headDim: 256, multiQuery: false };
    expect(attentionVariant(limitsOf(32768), hd256).tiles).toMatchObject({
      d4: 64,
      forwardTile: 8,
      backwardTile: 8,
      headsPerWorkgroup: 1,
    });
    // WebGPU's guaranteed 16 KiB: every supported head_dim still runs flash (4 rows at hd 256).
    const at16k = attentionVariant(limitsOf(16384), hd256).tiles!;
    expect(at16k).toMatchObject({ forwardTile: 4, backwardTile: 4 });
    expect(Math.max(at16k.forwardBytes, at16k.backwardBytes)).toBeLessThanOrEqual(16384);
    // A smaller (non-conforming) limit: hd 256 cannot fit, hd 64 can.
    const small = attentionVariant(limitsOf(8192), hd256);
    expect(small.kernels).toBe('cpu');
    expect(small.fallback).toMatch(/head_dim 256 needs 10864 bytes of workgroup memory.*allows 8192/);
    expect(attentionVariant(limitsOf(8192), { ...hd256, headDim: 64 }).kernels).toBe('gpu');
    expect(flashForwardBytes(64, 4)).toBeLessThan(flashBackwardBytes(64, 4));
    expect(attentionVariant(limitsOf(32768), { ...mqa, nHead: 3 }).tiles?.headsPerWorkgroup).toBe(2);
    // Grouped-query: the heads of one K/V head's group share its tiles (G = 4, 3, 7, 1).
    const hpw = (nHead: number, kvHeads: number): number | undefined =>
      attentionVariant(limitsOf(32768), { nHead, headDim: 64, multiQuery: false, kvHeads }).tiles
        ?.headsPerWorkgroup;
    expect([hpw(8, 2), hpw(6, 2), hpw(14, 2), hpw(4, 4)]).toEqual([4, 2, 4, 1]);
  });

  it('falls back to the cpu kernels (matching the reference) where the flash tiles do not fit', async () => {
    const ctx = gpu();
    const limits = ctx.adapter.limits;
    const before = limits.maxComputeWorkgroupStorageSize;
    const mask = buildAttentionMask(segmentIdsFromLengths([[5, 7]], 21), 21, 'paper');
    const shape: AttentionKernelShape = { T: 21, nHead: 2, headDim: 256, multiQuery: true };
    const rng = new Rng(77);
    const qkv = randomArray(rng, shape.T * qkvWidth(shape));
    const dOut = randomArray(rng, shape.T * 512);
    limits.maxComputeWorkgroupStorageSize = 8192; // what the variant choice reads
    try {
      expect(attentionVariant(ctx, shape, 'gpu').fallback).toMatch(/using the cpu attention/);
      const got = await runAttention(ctx, qkv, dOut, mask, shape, 'gpu', 2); // asserts ' cpu-fallback'
      expectMatchesReference(got, qkv, dOut, mask, shape);
    } finally {
      limits.maxComputeWorkgroupStorageSize = before;
    }
  });

  it('smaller flash tiles (8 and 4 staged rows, as on adapters with less workgroup memory) match the reference', async () => {
    const ctx = gpu();
    const limits = ctx.adapter.limits;
    const before = limits.maxComputeWorkgroupStorageSize;
    const L = 37;
    const mask = buildAttentionMask(segmentIdsFromLengths([[9, 1, 20], [37]], L), L, 'packed');
    limits.maxComputeWorkgroupStorageSize = 4400; // hd ≤ 32: forward 8 rows (4384 B), backward 4 (3696 B)
    try {
      for (const multiQuery of [true, false]) {
        const shape: AttentionKernelShape = { T: 2 * L, nHead: 3, headDim: 12, multiQuery };
        expect(attentionVariant(ctx, shape, 'gpu').tiles).toMatchObject({ forwardTile: 8, backwardTile: 4 });
        const rng = new Rng(multiQuery ? 41 : 42);
        const qkv = randomArray(rng, shape.T * qkvWidth(shape), 2);
        const dOut = randomArray(rng, shape.T * 36);
        const got = await runAttention(ctx, qkv, dOut, mask, shape, 'gpu', multiQuery ? 2 : 1);
        expectMatchesReference(got, qkv, dOut, mask, shape);
      }
    } finally {
      limits.maxComputeWorkgroupStorageSize = before;
    }
  });

  it('the gpu (flash) variant is deterministic: two runs give bit-identical out, lse and dqkv', async () => {
    const ctx = gpu();
    const L = 45;
    const mask = buildAttentionMask(
      segmentIdsFromLengths(
        [
          [30, 3, 12],
          [1, 40],
        ],
        L,
      ),
      L,
      'packed',
    );
    for (const [multiQuery, groups, kvHeads] of [
      [true, 1, undefined],
      [true, 3, undefined],
      [false, 1, undefined],
      [false, 3, 2],
    ] as const) {
      const shape: AttentionKernelShape = { T: 2 * L, nHead: 6, headDim: 16, multiQuery, kvHeads };
      const rng = new Rng(kvHeads ? 98 : multiQuery ? 90 + groups : 99);
      const qkv = randomArray(rng, shape.T * qkvWidth(shape), 2);
      const dOut = randomArray(rng, shape.T * 96);
      const a = await runAttention(ctx, qkv, dOut, mask, shape, 'gpu', groups);
      const b = await runAttention(ctx, qkv, dOut, mask, shape, 'gpu', groups);
      for (const key of ['out', 'lse', 'dqkv'] as const) {
        expect(new Uint8Array(b[key].buffer)).toEqual(new Uint8Array(a[key].buffer));
      }
      expectMatchesReference(a, qkv, dOut, mask, shape);
    }
  });
});

describe('attention reference: grouped-query heads and sliding windows', () => {
  it('grouped-query attention equals multi-head attention on K/V heads repeated as Hugging Face repeat_kv', () => {
    const L = 21;
    const mask = buildAttentionMask(segmentIdsFromLengths([[6, 1, 10], [21]], L), L, 'packed', 5);
    const hd = 3;
    const gqa: AttentionShape = { nHead: 6, headDim: hd, multiQuery: false, kvHeads: 2 };
    const mha: AttentionShape = { ...gqa, kvHeads: 6 };
    const rng = new Rng(3);
    const qkv = randomArray(rng, mask.T * qkvWidth(gqa));
    const dOut = randomArray(rng, mask.T * 6 * hd);
    // Expanded rows: query head h gets its own copy of K/V head ⌊h / 3⌋. Grouped rows: [Q (6) | K (2) | V (2)].
    const lg = qkvLayout(gqa);
    const lm = qkvLayout(mha);
    const kCol = (h: number): number => (6 + Math.floor(h / 3)) * hd;
    const vCol = (h: number): number => (8 + Math.floor(h / 3)) * hd;
    const expanded = new Float64Array(mask.T * lm.width);
    for (let t = 0; t < mask.T; t++) {
      for (let h = 0; h < 6; h++) {
        for (let d = 0; d < hd; d++) {
          expanded[t * lm.width + lm.q(h) + d] = qkv[t * lg.width + lg.q(h) + d];
          expanded[t * lm.width + lm.k(h) + d] = qkv[t * lg.width + kCol(h) + d];
          expanded[t * lm.width + lm.v(h) + d] = qkv[t * lg.width + vCol(h) + d];
        }
      }
    }
    const a = attentionForwardRef(qkv, mask, gqa);
    const b = attentionForwardRef(expanded, mask, mha);
    expect(compare(a.out, b.out).maxRel).toBeLessThan(1e-12);
    expect(compare(a.lse, b.lse).maxRel).toBeLessThan(1e-12);
    // dK, dV of a shared head: the sum over the query heads that read it.
    const dg = attentionBackwardRef(qkv, dOut, mask, gqa);
    const dm = attentionBackwardRef(expanded, dOut, mask, mha);
    const folded = new Float64Array(dg.length);
    for (let t = 0; t < mask.T; t++) {
      for (let h = 0; h < 6; h++) {
        for (let d = 0; d < hd; d++) {
          folded[t * lg.width + lg.q(h) + d] = dm[t * lm.width + lm.q(h) + d];
          folded[t * lg.width + kCol(h) + d] += dm[t * lm.width + lm.k(h) + d];
          folded[t * lg.width + vCol(h) + d] += dm[t * lm.width + lm.v(h) + d];
        }
      }
    }
    expect(compare(dg, folded).maxRel).toBeLessThan(1e-12);
  });

  it('sliding window w: query t sees keys t − w < k ≤ t of its segment (at most w), query_end exact', () => {
    const rng = new Rng(8);
    for (let trial = 0; trial < 40; trial++) {
      const L = 1 + rng.int(40);
      const lengths: number[] = [];
      for (let used = 0; used < L && rng.next() < 0.9;) {
        const len = 1 + rng.int(Math.min(L - used, 15));
        lengths.push(len);
        used += len;
      }
      const ids = segmentIdsFromLengths([lengths.length ? lengths : [L], [L]], L);
      const mode: AttentionMode = rng.next() < 0.5 ? 'packed' : 'paper';
      const w = 1 + rng.int(12);
      const mask = buildAttentionMask(ids, L, mode, w);
      validateAttentionMask(mask);
      const full = buildAttentionMask(ids, L, mode);
      for (let t = 0; t < mask.T; t++) {
        let last = -1;
        for (let k = 0; k < mask.T; k++) {
          const expected = attends(full, t, k) && t - w < k;
          expect(attends(mask, t, k), JSON.stringify({ L, lengths, mode, w, t, k })).toBe(expected);
          if (attends(mask, k, t)) last = k;
        }
        if (mask.segment[t] !== -1) expect(mask.queryEnd[t]).toBe(last + 1);
      }
      // A window no shorter than the pack changes nothing.
      expect(buildAttentionMask(ids, L, mode, L)).toEqual(full);
    }
    expect(() => buildAttentionMask([0, 0], 2, 'packed', 0)).toThrow(/sliding window 0/);
  });

  it('the work estimate follows the window (tile skipping on both sides)', () => {
    const shape: AttentionShape = { nHead: 2, headDim: 8, multiQuery: false, kvHeads: 1 };
    const ids = new Int32Array(100);
    const full = attentionWork(buildAttentionMask(ids, 100, 'packed'), shape);
    const windowed = attentionWork(buildAttentionMask(ids, 100, 'packed', 10), shape);
    expect(windowed.validPairs).toBe(55 + 90 * 10); // min(t + 1, 10) keys per query
    expect(full.validPairs).toBe(5050);
    // 16-token tiles: a query tile's keys are its queries and the 9 before (the last tile: 4 queries).
    expect(windowed.forwardTiles).toBe(1 + 5 * 2 + 1);
    expect(windowed.keySideTiles).toBeLessThan(full.keySideTiles);
    expect(windowed.flopsBackward).toBeLessThan(full.flopsBackward);
  });
});
