/**
 * Scoring with an exported detector through any ONNX Runtime binding (onnxruntime-node in tests and
 * benchmarks, onnxruntime-web in the scan worker): tokenize as the detector was trained, batch rows of
 * similar length with right padding, read `probability` and `logits`. The runtime is passed in, so
 * this layer imports no runtime itself.
 */
import { normalizeCode } from '../../data/normalize.ts';
import type { DetectorTokenization } from './export.ts';

/** The part of an ONNX Runtime InferenceSession this needs (both bindings fit). */
export interface OrtSessionLike {
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown; dims: readonly number[] }>>;
}

/** The binding's Tensor constructor (both bindings fit). */
export type OrtTensorConstructor = new (
  type: 'int64',
  data: BigInt64Array,
  dims: readonly number[],
) => unknown;

export interface DetectorScore {
  probability: number;
  logits: [number, number];
}

/** Token ids of one method as the detector expects them (normalized, cut to maxTokens, framed). */
export function detectorTokens(
  code: string,
  tokenizer: { encode(text: string): number[] },
  t: DetectorTokenization,
): Int32Array {
  const text =
    t.normalize.stripComments || t.normalize.collapseWhitespace ? normalizeCode(code, t.normalize) : code;
  const ids = tokenizer.encode(text);
  // Scanning always answers: 'drop' (a training-time choice) cuts like 'head'.
  const kept =
    ids.length <= t.maxTokens
      ? ids
      : t.truncation === 'tail'
        ? ids.slice(ids.length - t.maxTokens)
        : ids.slice(0, t.maxTokens);
  return Int32Array.from(t.frame ? [...t.frame.before, ...kept, ...t.frame.after] : kept);
}

export interface ScoreOptions {
  padId: number;
  /** Rows × sequence² × heads per run at most (bounds the attention matrix); default 2^24. */
  maxAttentionCells?: number;
  heads?: number;
  /** Rows per run at most (default 32). */
  maxRows?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Batches of row indices: sorted by length so padding stays small, each within the attention budget. */
export function planBatches(
  lengths: readonly number[],
  o: Omit<ScoreOptions, 'padId' | 'onProgress'> = {},
): number[][] {
  const budget = o.maxAttentionCells ?? 2 ** 24;
  const heads = o.heads ?? 1;
  const maxRows = o.maxRows ?? 32;
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b]);
  const batches: number[][] = [];
  let current: number[] = [];
  for (const i of order) {
    const longest = lengths[i]; // sorted ascending: the newest row is the longest
    if (
      current.length > 0 &&
      (current.length + 1 > maxRows || (current.length + 1) * longest * longest * heads > budget)
    ) {
      batches.push(current);
      current = [];
    }
    current.push(i);
  }
  if (current.length) batches.push(current);
  return batches;
}

/** Probability and logits of every token list, in input order. Empty lists score NaN. */
export async function scoreWithSession(
  session: OrtSessionLike,
  Tensor: OrtTensorConstructor,
  rows: readonly ArrayLike<number>[],
  o: ScoreOptions,
): Promise<DetectorScore[]> {
  const scores: DetectorScore[] = rows.map(() => ({ probability: NaN, logits: [NaN, NaN] }));
  const nonEmpty = rows.map((_, i) => i).filter((i) => rows[i].length > 0);
  const batches = planBatches(
    nonEmpty.map((i) => rows[i].length),
    o,
  ).map((b) => b.map((k) => nonEmpty[k]));
  let done = 0;
  for (const batch of batches) {
    const S = Math.max(...batch.map((i) => rows[i].length));
    const ids = new BigInt64Array(batch.length * S).fill(BigInt(o.padId));
    const mask = new BigInt64Array(batch.length * S);
    batch.forEach((i, b) => {
      const row = rows[i];
      for (let t = 0; t < row.length; t++) {
        ids[b * S + t] = BigInt(row[t]);
        mask[b * S + t] = 1n;
      }
    });
    const out = await session.run({
      input_ids: new Tensor('int64', ids, [batch.length, S]),
      attention_mask: new Tensor('int64', mask, [batch.length, S]),
    });
    const probability = out.probability.data as Float32Array;
    const logits = out.logits.data as Float32Array;
    batch.forEach((i, b) => {
      scores[i] = { probability: probability[b], logits: [logits[2 * b], logits[2 * b + 1]] };
    });
    done += batch.length;
    o.onProgress?.(done, nonEmpty.length);
  }
  return scores;
}
