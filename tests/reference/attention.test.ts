import { describe, expect, it } from 'vitest';
import {
  attentionBackwardRef,
  attentionForwardRef,
  attentionWork,
  buildAttentionMask,
  qkvLayout,
  segmentIdsFromLengths,
  type AttentionMask,
  validateAttentionMask,
  type AttentionShape,
} from '../../src/engine/reference/attention.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';

describe('attention masks', () => {
  it('packed: key_start is the start of the segment, query_end its end; padding sees nothing', () => {
    const ids = segmentIdsFromLengths(
      [
        [2, 3],
        [1, 4, 1],
      ],
      7,
    );
    expect(Array.from(ids)).toEqual([0, 0, 1, 1, 1, -1, -1, 0, 1, 1, 1, 1, 2, -1]);
    const m = buildAttentionMask(ids, 7, 'packed');
    expect(Array.from(m.keyStart)).toEqual([0, 0, 2, 2, 2, 5, 6, 7, 8, 8, 8, 8, 12, 13]);
    expect(Array.from(m.queryEnd)).toEqual([2, 2, 5, 5, 5, 5, 6, 8, 12, 12, 12, 12, 13, 13]);
    validateAttentionMask(m);
  });

  it('paper: key_start is the start of the pack, query_end one past its last non-padding token', () => {
    const ids = segmentIdsFromLengths([[2, 3], [7]], 7);
    const m = buildAttentionMask(ids, 7, 'paper');
    expect(Array.from(m.keyStart)).toEqual([0, 0, 0, 0, 0, 5, 6, 7, 7, 7, 7, 7, 7, 7]);
    expect(Array.from(m.queryEnd)).toEqual([5, 5, 5, 5, 5, 5, 6, 14, 14, 14, 14, 14, 14, 14]);
    validateAttentionMask(m);
  });

  it('rejects non-contiguous segments, ragged packs and masks the kernels cannot use', () => {
    expect(() => buildAttentionMask([0, 1, 0, -1], 4, 'packed')).toThrow(/not contiguous/);
    expect(() => buildAttentionMask([0, 0, 0], 2, 'packed')).toThrow(/whole number/);
    const m = buildAttentionMask(segmentIdsFromLengths([[3, 2]], 6), 6, 'paper');
    const tooShort: AttentionMask = {
      ...m,
      queryEnd: Int32Array.from(m.queryEnd, (e, k) => (k === 1 ? 4 : e)),
    };
    expect(() => validateAttentionMask(tooShort)).toThrow(/query_end\[1\] = 4 but query 4/);
    const future: AttentionMask = {
      ...m,
      keyStart: Int32Array.from(m.keyStart, (s, t) => (t === 2 ? 3 : s)),
    };
    expect(() => validateAttentionMask(future)).toThrow(/key_start\[2\]/);
  });
});

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

describe('attention reference forward', () => {
  const shape: AttentionShape = { nHead: 2, headDim: 3, multiQuery: false };

  it('a length-1 segment returns its own value row; padding rows are zero', () => {
    const mask = buildAttentionMask(segmentIdsFromLengths([[4, 1]], 6), 6, 'packed');
    const lay = qkvLayout(shape);
    const qkv = randomArray(new Rng(1), 6 * lay.width);
    const { out, lse } = attentionForwardRef(qkv, mask, shape);
    for (let h = 0; h < 2; h++) {
      for (let d = 0; d < 3; d++)
        expect(out[4 * 6 + h * 3 + d]).toBeCloseTo(qkv[4 * lay.width + lay.v(h) + d], 14);
      // lse of a single key is its own scaled score.
      let s = 0;
      for (let d = 0; d < 3; d++) s += qkv[4 * lay.width + lay.q(h) + d] * qkv[4 * lay.width + lay.k(h) + d];
      expect(lse[4 * 2 + h]).toBeCloseTo(s / Math.sqrt(3), 14);
    }
    expect(Array.from(out.subarray(5 * 6))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('packed segments are isolated: each equals the same function run alone', () => {
    const lay = qkvLayout(shape);
    const qkv = randomArray(new Rng(2), 9 * lay.width);
    const packed = attentionForwardRef(
      qkv,
      buildAttentionMask(segmentIdsFromLengths([[4, 5]], 9), 9, 'packed'),
      shape,
    );
    const second = qkv.slice(4 * lay.width);
    const alone = attentionForwardRef(second, buildAttentionMask(new Int32Array(5), 5, 'packed'), shape);
    for (let i = 0; i < alone.out.length; i++) expect(packed.out[4 * 6 + i]).toBeCloseTo(alone.out[i], 14);
    // The paper mode lets the second function see the first, so its outputs differ.
    const paper = attentionForwardRef(
      qkv,
      buildAttentionMask(segmentIdsFromLengths([[4, 5]], 9), 9, 'paper'),
      shape,
    );
    expect(Math.abs(paper.out[5 * 6] - alone.out[6])).toBeGreaterThan(1e-6);
  });

  it('multi-query equals multi-head attention with the K/V head copied to every head', () => {
    const H = 3;
    const hd = 2;
    const T = 5;
    const mqa: AttentionShape = { nHead: H, headDim: hd, multiQuery: true };
    const mha: AttentionShape = { nHead: H, headDim: hd, multiQuery: false };
    const a = qkvLayout(mqa);
    const b = qkvLayout(mha);
    const qkv = randomArray(new Rng(3), T * a.width);
    const copied = new Float64Array(T * b.width);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        for (let d = 0; d < hd; d++) {
          copied[t * b.width + b.q(h) + d] = qkv[t * a.width + a.q(h) + d];
          copied[t * b.width + b.k(h) + d] = qkv[t * a.width + a.k(h) + d];
          copied[t * b.width + b.v(h) + d] = qkv[t * a.width + a.v(h) + d];
        }
      }
    }
    const mask = buildAttentionMask([0, 0, 0, 1, 1], T, 'packed');
    const x = attentionForwardRef(qkv, mask, mqa).out;
    const y = attentionForwardRef(copied, mask, mha).out;
    for (let i = 0; i < x.length; i++) expect(x[i]).toBeCloseTo(y[i], 14);
  });
});

describe('attention reference backward vs central finite differences', () => {
  const cases: {
    name: string;
    shape: AttentionShape;
    packs: number[][];
    L: number;
    mode: 'packed' | 'paper';
  }[] = [
    {
      name: 'MHA hd=3 packed',
      shape: { nHead: 2, headDim: 3, multiQuery: false },
      packs: [[3, 1, 2], [5]],
      L: 7,
      mode: 'packed',
    },
    {
      name: 'MQA hd=2 packed',
      shape: { nHead: 3, headDim: 2, multiQuery: true },
      packs: [[2, 4]],
      L: 7,
      mode: 'packed',
    },
    {
      name: 'MQA hd=3 paper',
      shape: { nHead: 2, headDim: 3, multiQuery: true },
      packs: [[2, 3], [4]],
      L: 6,
      mode: 'paper',
    },
  ];
  for (const { name, shape, packs, L, mode } of cases) {
    it(name, () => {
      const mask = buildAttentionMask(segmentIdsFromLengths(packs, L), L, mode);
      const { width } = qkvLayout(shape);
      const T = mask.T;
      const D = shape.nHead * shape.headDim;
      const rng = new Rng(T * 31 + width);
      const qkv = Float64Array.from(randomArray(rng, T * width, 1.5));
      const w = Float64Array.from(randomArray(rng, T * D));
      const loss = (x: Float64Array): number => {
        const { out } = attentionForwardRef(x, mask, shape);
        let l = 0;
        for (let i = 0; i < out.length; i++) l += out[i] * w[i];
        return l;
      };
      const grad = attentionBackwardRef(qkv, w, mask, shape);
      const eps = 1e-5;
      const numeric = new Float64Array(qkv.length);
      for (let i = 0; i < qkv.length; i++) {
        const saved = qkv[i];
        qkv[i] = saved + eps;
        const up = loss(qkv);
        qkv[i] = saved - eps;
        const down = loss(qkv);
        qkv[i] = saved;
        numeric[i] = (up - down) / (2 * eps);
      }
      // Central differences in float64: truncation O(eps²) ≈ 1e-10, rounding ≈ 1e-16/eps ≈ 1e-11.
      let err = 0;
      for (let i = 0; i < qkv.length; i++) err = Math.max(err, Math.abs(grad[i] - numeric[i]));
      expect(err / maxAbs(numeric)).toBeLessThan(1e-7);
      expect(maxAbs(grad)).toBeGreaterThan(0.01);
      // Padding tokens: exactly zero gradient.
      for (let t = 0; t < T; t++) {
        if (mask.segment[t] !== -1) continue;
        for (let c = 0; c < width; c++) expect(grad[t * width + c]).toBe(0);
      }
    });
  }
});

describe('attention work estimate', () => {
  const shape: AttentionShape = { nHead: 2, headDim: 8, multiQuery: true };

  it('counts valid pairs as Σ len(len+1)/2 in packed mode and pack-causal pairs in paper mode', () => {
    const ids = segmentIdsFromLengths([[20, 20, 20, 4], [64]], 64);
    const packed = attentionWork(buildAttentionMask(ids, 64, 'packed'), shape);
    const tri = (n: number): number => (n * (n + 1)) / 2;
    expect(packed.validPairs).toBe(3 * tri(20) + tri(4) + tri(64));
    const paper = attentionWork(buildAttentionMask(ids, 64, 'paper'), shape);
    expect(paper.validPairs).toBe(2 * tri(64));
    // Query tiles of pack 0 visit 1, 2, 2, 2 key tiles (packed) and 1, 2, 3, 4 (paper); pack 1: 1..4.
    expect(packed.forwardTiles).toBe(7 + 10);
    expect(paper.forwardTiles).toBe(10 + 10);
    expect(packed.visitedPairs).toBeGreaterThanOrEqual(packed.validPairs);
    expect(packed.idealFlopsForward).toBe(2 * packed.validPairs * 4 * 8);
  });

  it('visits a number of tiles that follows the segments, not the pack', () => {
    // 64 functions of length 16 aligned to tiles: one key tile per query tile.
    const ids = segmentIdsFromLengths([Array.from({ length: 64 }, () => 16)], 1024);
    const w = attentionWork(buildAttentionMask(ids, 1024, 'packed'), shape);
    expect(w.forwardTiles).toBe(64);
    expect(w.keySideTiles).toBe(64);
    // Causal over the whole pack: 1 + 2 + … + 64 tiles.
    const dense = attentionWork(buildAttentionMask(new Int32Array(1024), 1024, 'packed'), shape);
    expect(dense.forwardTiles).toBe((64 * 65) / 2);
  });
});
