import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  firstFit,
  makeBatches,
  type Batch,
  type BatchExample,
  type BatchMode,
  type BatchOptions,
} from '../../src/data/batching';
import { DataError } from '../../src/data/errors';
import { quantile, sampleFunctionLengths } from '../../src/data/lengths';

const SEP = 100_000;
const PAD = 100_001;

/** Examples whose tokens encode (example, position) so any misplacement is visible. */
function examplesFromLengths(lengths: number[], labels?: number[]): BatchExample[] {
  return lengths.map((n, i) => ({
    tokens: Array.from({ length: n }, (_, k) => i * 10_000 + k),
    label: ((labels?.[i] ?? i) % 2) as 0 | 1,
    weight: 1 + (i % 3),
  }));
}

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`invariant violated: ${what}`);
}

/** Check every structural invariant of a set of batches (plain checks: this runs per token). */
function checkBatches(examples: BatchExample[], batches: Batch[], opts: BatchOptions): void {
  const seen = new Array(examples.length).fill(0);
  const L = opts.packLength;
  for (const b of batches) {
    check(b.rowLength <= L, 'row longer than L');
    check(b.inputIds.length === b.rows * b.rowLength, 'buffer size');
    const owner = new Int32Array(b.rows * b.rowLength).fill(-1);
    let real = 0;
    b.functions.forEach((f, fi) => {
      check(f.segment === fi, 'segment id');
      const ex = examples[f.exampleIndex];
      seen[f.exampleIndex]++;
      check(
        f.length === ex.tokens.length && f.label === ex.label && f.weight === (ex.weight ?? 1),
        'metadata',
      );
      const rowStart = f.pack * b.rowLength;
      check(
        f.start >= rowStart && f.start + f.length + 1 <= rowStart + b.rowLength,
        'function crosses a row',
      );
      check(f.last === f.start + f.length - 1, 'last');
      for (let k = 0; k <= f.length; k++) {
        const t = f.start + k;
        check(owner[t] === -1, 'slot used twice');
        owner[t] = fi;
        check(b.inputIds[t] === (k < f.length ? ex.tokens[k] : SEP), 'token content/order');
        check(b.segmentIds[t] === fi, 'segment of token');
        if (opts.mode === 'paper') {
          check(b.positionIds[t] === t - rowStart, 'paper position');
          check(b.keyStart[t] === rowStart, 'paper key start');
        } else {
          check(b.positionIds[t] === k, 'position restarts per function');
          // every key in [keyStart, t] belongs to this segment
          check(b.keyStart[t] === f.start, 'key start is the segment start');
          for (let q = b.keyStart[t]; q <= t; q++)
            check(b.segmentIds[q] === fi, 'key range crosses a segment');
        }
      }
      check(b.inputIds[f.last + 1] === SEP, 'separator after last');
      real += f.length + 1;
    });
    check(b.realTokens === real, 'real token count');
    for (let t = 0; t < owner.length; t++) {
      if (owner[t] !== -1) continue;
      check(b.inputIds[t] === PAD && b.segmentIds[t] === -1 && b.keyStart[t] === t, 'padding');
    }
    const perRow = new Array(b.rows).fill(0);
    for (const f of b.functions) perRow[f.pack]++;
    for (const c of perRow) {
      check(c > 0, 'empty row');
      if (opts.mode === 'padded' || opts.mode === 'bucketed') check(c === 1, 'one function per padded row');
      else check(c <= (opts.maxFunctionsPerPack ?? 200), 'functions per pack cap');
    }
    if ((opts.mode === 'padded' || opts.mode === 'bucketed') && opts.padTo !== 'pack-length') {
      const longest = Math.max(...b.functions.map((f) => f.length + 1));
      check(b.rowLength === longest, 'padded to the longest in the batch');
    }
  }
  seen.forEach((c, i) => check(c === 1, `example ${i} appears ${c} times`));
}

const modes: BatchMode[] = ['packed', 'paper', 'padded', 'bucketed'];

describe('makeBatches properties', () => {
  it('places every token of every function exactly once, within L, with isolated segments', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 64 }).chain((L) =>
          fc.record({
            L: fc.constant(L),
            lengths: fc.array(fc.integer({ min: 1, max: L - 1 }), { maxLength: 60 }),
            maxPer: fc.integer({ min: 1, max: 12 }),
            rows: fc.integer({ min: 1, max: 5 }),
            mode: fc.constantFrom(...modes),
            padTo: fc.constantFrom('longest' as const, 'pack-length' as const),
            seed: fc.integer({ min: 0, max: 2 ** 31 }),
            epoch: fc.integer({ min: 0, max: 5 }),
          }),
        ),
        ({ L, lengths, maxPer, rows, mode, padTo, seed, epoch }) => {
          const examples = examplesFromLengths(lengths);
          const opts: BatchOptions = {
            mode,
            packLength: L,
            separatorId: SEP,
            padId: PAD,
            seed,
            epoch,
            maxFunctionsPerPack: maxPer,
            rowsPerBatch: rows,
            padTo,
            bucketWindow: 2,
          };
          const { batches, stats } = makeBatches(examples, opts);
          checkBatches(examples, batches, opts);
          expect(stats.functions).toBe(lengths.length);
          expect(stats.realTokens).toBe(lengths.reduce((a, n) => a + n + 1, 0));
          expect(stats.paddingTokens).toBe(stats.slots - stats.realTokens);
          if (mode === 'packed' || mode === 'paper') {
            // fewer rows than functions only by packing; never fewer than the volume bound
            const lower = Math.max(Math.ceil(stats.realTokens / L), Math.ceil(lengths.length / maxPer));
            expect(stats.rows).toBeGreaterThanOrEqual(lower);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is deterministic per (seed, epoch) and reshuffles between epochs', () => {
    const examples = examplesFromLengths(sampleFunctionLengths(300, 7, { max: 1000 }));
    for (const mode of modes) {
      const opts: BatchOptions = { mode, packLength: 1024, separatorId: SEP, padId: PAD, seed: 42, epoch: 3 };
      const a = makeBatches(examples, opts).batches;
      const b = makeBatches(examples, opts).batches;
      expect(a.map((x) => Array.from(x.inputIds))).toEqual(b.map((x) => Array.from(x.inputIds)));
      const c = makeBatches(examples, { ...opts, epoch: 4 }).batches;
      const order = (bs: Batch[]) => bs.flatMap((x) => x.functions.map((f) => f.exampleIndex));
      expect(order(c)).not.toEqual(order(a));
      expect([...order(c)].sort((p, q) => p - q)).toEqual([...order(a)].sort((p, q) => p - q));
    }
  });

  it('first-fit with a segment tree equals naive first-fit', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 80 }),
        fc.integer({ min: 1, max: 6 }),
        (sizes, maxItems) => {
          const order = sizes.map((_, i) => i);
          const bins: number[][] = [];
          const free: number[] = [];
          for (const i of order) {
            let b = bins.findIndex((bin, k) => free[k] >= sizes[i] && bin.length < maxItems);
            if (b < 0) {
              b = bins.length;
              bins.push([]);
              free.push(50);
            }
            bins[b].push(i);
            free[b] -= sizes[i];
          }
          expect(firstFit(sizes, order, 50, maxItems)).toEqual(bins);
        },
      ),
    );
  });

  it('rejects functions that do not fit and empty functions with typed errors', () => {
    const base = { mode: 'packed' as const, packLength: 8, separatorId: SEP, padId: PAD, seed: 1 };
    expect(() => makeBatches(examplesFromLengths([8]), base)).toThrow(DataError);
    expect(() => makeBatches(examplesFromLengths([7]), base)).not.toThrow();
    expect(() => makeBatches([{ tokens: [], label: 0 }], base)).toThrow(/no tokens/);
  });

  it('caps functions per pack at 200 by default', () => {
    const examples = examplesFromLengths(new Array(1000).fill(1));
    const { batches, stats } = makeBatches(examples, {
      mode: 'packed',
      packLength: 2048,
      separatorId: SEP,
      padId: PAD,
      seed: 0,
    });
    expect(stats.maxFunctionsPerRow).toBe(200);
    expect(batches.length).toBe(5);
  });
});

describe('packing on a realistic length distribution', () => {
  const lengths = sampleFunctionLengths(4000, 2401);

  it('matches the paper data shape: median ≈ 250, p90 ≈ 900, a tail beyond 2048', () => {
    expect(quantile(lengths, 0.5)).toBeGreaterThan(225);
    expect(quantile(lengths, 0.5)).toBeLessThan(275);
    expect(quantile(lengths, 0.9)).toBeGreaterThan(800);
    expect(quantile(lengths, 0.9)).toBeLessThan(1000);
    const over = (n: number) => lengths.filter((x) => x > n).length / lengths.length;
    expect(over(512)).toBeGreaterThan(0.18);
    expect(over(512)).toBeLessThan(0.27);
    expect(over(2048)).toBeGreaterThan(0.008);
    expect(over(2048)).toBeLessThan(0.035);
  });

  it('packed wastes far fewer tokens than padding to L, and bucketing beats plain padding', () => {
    const L = 2048;
    const examples = examplesFromLengths(lengths.map((n) => Math.min(n, L - 1)));
    const common = { packLength: L, separatorId: SEP, padId: PAD, seed: 5 };
    const packed = makeBatches(examples, { ...common, mode: 'packed' }).stats;
    const paperUnpacked = makeBatches(examples, { ...common, mode: 'padded', padTo: 'pack-length' }).stats;
    const padded = makeBatches(examples, { ...common, mode: 'padded' }).stats;
    const bucketed = makeBatches(examples, { ...common, mode: 'bucketed' }).stats;
    expect(packed.wastedShare).toBeLessThan(0.05);
    expect(paperUnpacked.wastedShare).toBeGreaterThan(0.75);
    expect(bucketed.wastedShare).toBeLessThan(padded.wastedShare);
    // the paper: ~5 functions per 2048-token sequence with first-fit packing
    expect(packed.meanFunctionsPerRow).toBeGreaterThan(4);
    expect(paperUnpacked.slots / packed.slots).toBeGreaterThan(4);
  });
});

describe('batches feed the engine attention mask', () => {
  it("agrees with the engine's mask builder (key start per token) in every mode", async () => {
    const { buildAttentionMask, validateAttentionMask } =
      await import('../../src/engine/reference/attention');
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 40 }),
        fc.constantFrom(...modes),
        fc.integer({ min: 0, max: 1000 }),
        (lengths, mode, seed) => {
          const { batches } = makeBatches(examplesFromLengths(lengths), {
            mode,
            packLength: 32,
            separatorId: SEP,
            padId: PAD,
            seed,
            rowsPerBatch: 3,
            maxFunctionsPerPack: 4,
          });
          for (const b of batches) {
            const mask = buildAttentionMask(b.segmentIds, b.rowLength, mode === 'paper' ? 'paper' : 'packed');
            validateAttentionMask(mask);
            expect(Array.from(mask.keyStart)).toEqual(Array.from(b.keyStart));
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
