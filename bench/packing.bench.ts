/**
 * Padded vs packed batching on a length distribution like real vulnerability datasets (median ≈ 250
 * BPE tokens, p90 ≈ 900, a tail beyond 2048; src/data/lengths.ts) at L = 512 / 1024 / 2048.
 *
 * Per mode: rows and token slots needed for one epoch, the wasted (padding) share, the attention work
 * (query·key pairs a dense causal kernel computes per row vs the pairs a block-diagonal kernel needs),
 * the speedup in token slots against the paper's unpacked setting (one function per row padded to L)
 * and against length-bucketed padding, and how fast makeBatches itself runs. Functions longer than
 * L − 1 tokens are truncated (keep-head), as in training.
 *
 * The step cost is modelled as proportional to token slots (the linear layers dominate at these
 * lengths); the engine's measured training-step throughput is in bench/train-step.bench.ts.
 */
import { makeBatches, type BatchMode, type BatchOptions } from '../src/data/batching.ts';
import { sampleFunctionLengths } from '../src/data/lengths.ts';
import type { Bench, BenchRow } from './harness.ts';

const SEP = 0;
const PAD = 1;

export const bench: Bench = {
  name: 'packing',
  description: 'padded vs packed batches: wasted tokens and slot speedup on a realistic length distribution',
  async run({ quick }) {
    const n = quick ? 2000 : 23000; // the paper's imbalanced set has ~23k functions
    const lengths = sampleFunctionLengths(n, 2401);
    const rows: BenchRow[] = [];
    const summary: Record<string, unknown> = { functions: n, paperReportedSpeedup: 13 };
    for (const L of [512, 1024, 2048]) {
      const examples = lengths.map((len, i) => ({
        tokens: new Int32Array(Math.min(len, L - 1)).fill(2 + (i % 1000)),
        label: (i % 2) as 0 | 1,
      }));
      const variants: { label: string; mode: BatchMode; extra?: Partial<BatchOptions> }[] = [
        { label: 'unpacked (pad to L)', mode: 'padded', extra: { padTo: 'pack-length', rowsPerBatch: 8 } },
        { label: 'padded (longest in batch of 8)', mode: 'padded', extra: { rowsPerBatch: 8 } },
        { label: 'bucketed (batch of 8)', mode: 'bucketed', extra: { rowsPerBatch: 8 } },
        { label: 'paper packing (first fit)', mode: 'paper' },
        { label: 'packed (FFD, cap 200)', mode: 'packed' },
      ];
      const slots: Record<string, number> = {};
      for (const v of variants) {
        const opts: BatchOptions = {
          mode: v.mode,
          packLength: L,
          separatorId: SEP,
          padId: PAD,
          seed: 1,
          ...v.extra,
        };
        const t0 = performance.now();
        const { batches, stats } = makeBatches(examples, opts);
        const ms = performance.now() - t0;
        let densePairs = 0;
        let neededPairs = 0;
        for (const b of batches) {
          densePairs += (b.rows * b.rowLength * (b.rowLength + 1)) / 2;
          if (v.mode === 'paper')
            for (let r = 0; r < b.rows; r++) {
              const used = b.functions.filter((f) => f.pack === r).reduce((a, f) => a + f.length + 1, 0);
              neededPairs += (used * (used + 1)) / 2;
            }
          else for (const f of b.functions) neededPairs += ((f.length + 1) * (f.length + 2)) / 2;
        }
        slots[v.label] = stats.slots;
        rows.push({
          L,
          mode: v.label,
          rows: stats.rows,
          slots: stats.slots,
          wasted: `${(100 * stats.wastedShare).toFixed(1)}%`,
          'fn/row': stats.meanFunctionsPerRow,
          'attn pairs dense (M)': densePairs / 1e6,
          'attn pairs needed (M)': neededPairs / 1e6,
          'vs unpacked': slots['unpacked (pad to L)'] / stats.slots,
          'vs bucketed': slots['bucketed (batch of 8)'] ? slots['bucketed (batch of 8)'] / stats.slots : '',
          'batching ms': ms,
        });
      }
      summary[`L${L}`] = {
        packedVsUnpacked: slots['unpacked (pad to L)'] / slots['packed (FFD, cap 200)'],
        packedVsBucketed: slots['bucketed (batch of 8)'] / slots['packed (FFD, cap 200)'],
      };
    }
    return { rows, summary };
  },
};
