/**
 * Batches for the engine. Every function is followed by one EOS separator that belongs to its
 * segment; the classifier head reads the hidden state of the function's last code token (the token
 * before its separator), as in the paper.
 *
 * Modes
 * - `packed`: first-fit decreasing into rows of `packLength` tokens, at most `maxFunctionsPerPack`
 *   functions per row; positions restart at 0 for every function and a token attends only to
 *   earlier tokens of its own function (`keyStart` = its segment's start): block-diagonal causal.
 * - `paper`: the authors' original packing for reproduction: first-fit in shuffled order, positions
 *   0..L-1 across the row and attention across the whole row (`keyStart` = the row's start).
 * - `padded`: one function per row, padded to the longest row in the batch (or to `packLength`
 *   with `padTo: 'pack-length'`, the paper's unpacked setting).
 * - `bucketed`: `padded`, but rows are sorted by length within windows of the shuffled order so that
 *   each batch holds similar lengths (length-bucketed padding); batch order is then shuffled.
 *
 * Layout: a batch is `rows × rowLength` tokens flattened row-major (the engine's T). `start`,
 * `last` and `keyStart` are flattened indices into that batch; `pack` is the row within the batch.
 * A token at t may attend to keys in [keyStart[t], t]. Padding has segment −1, position 0 (its
 * index in `paper` mode) and keyStart = t (it sees only itself, so softmax stays finite).
 *
 * Deterministic: the same examples, seed and epoch give the same batches; a new epoch reshuffles.
 */
import { Rng } from '../shared/random.ts';
import { DataError } from './errors';
import type { Label } from './types';

export type BatchMode = 'padded' | 'bucketed' | 'packed' | 'paper';

export interface BatchExample {
  /** Code tokens without the separator (1 ≤ length ≤ packLength − 1). */
  tokens: ArrayLike<number>;
  label: Label;
  weight?: number;
  /** Reported back per function (tokenizeRecords sets the record index); defaults to the position in the input array. */
  exampleIndex?: number;
}

export interface BatchOptions {
  mode: BatchMode;
  /** L: the row length of packed/paper rows and the maximum function length + 1 in every mode. */
  packLength: number;
  separatorId: number;
  padId: number;
  seed: number;
  epoch?: number;
  /** Packed/paper: functions per row at most (default 200, as in the paper). */
  maxFunctionsPerPack?: number;
  /** Rows per batch (default 1 for packed/paper, 8 for padded/bucketed). */
  rowsPerBatch?: number;
  /** Padded: pad each batch to its longest row (default) or to packLength. */
  padTo?: 'longest' | 'pack-length';
  /** Bucketed: batches per sorting window (default 32). */
  bucketWindow?: number;
  /** Reshuffle per epoch (default true). */
  shuffle?: boolean;
}

export interface PackedFunction {
  /** Row within the batch. */
  pack: number;
  /** Flattened index of the function's first token. */
  start: number;
  /** Flattened index of the last code token (the one before the function's EOS separator). */
  last: number;
  /** Code tokens (the separator not counted). */
  length: number;
  /** Segment id of its tokens (its index in `functions`). */
  segment: number;
  label: Label;
  weight: number;
  exampleIndex: number;
}

export interface Batch {
  rows: number;
  rowLength: number;
  /** rows × rowLength, row-major. */
  inputIds: Int32Array;
  segmentIds: Int32Array;
  positionIds: Int32Array;
  keyStart: Int32Array;
  functions: PackedFunction[];
  /** Tokens that are not padding (code + separators). */
  realTokens: number;
}

export interface BatchStats {
  mode: BatchMode;
  batches: number;
  rows: number;
  functions: number;
  /** All token slots (rows × rowLength summed over batches). */
  slots: number;
  realTokens: number;
  paddingTokens: number;
  /** paddingTokens / slots. */
  wastedShare: number;
  meanFunctionsPerRow: number;
  maxFunctionsPerRow: number;
}

export const DEFAULT_MAX_FUNCTIONS_PER_PACK = 200;

/** A per-epoch generator derived from the run seed. */
export function epochRng(seed: number, epoch: number): Rng {
  return new Rng((seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0);
}

/**
 * First-fit bin packing of items (visited in `order`) into bins of `capacity` holding at most
 * `maxItems` each, in O(n log n) with a max segment tree over remaining capacity (a bin that
 * reached `maxItems` reads as full). Returns the bins as lists of item indices, in opening order.
 */
export function firstFit(
  sizes: ArrayLike<number>,
  order: ArrayLike<number>,
  capacity: number,
  maxItems = Infinity,
): number[][] {
  const n = order.length;
  if (n === 0) return [];
  let size = 1;
  while (size < n) size *= 2;
  const tree = new Float64Array(2 * size).fill(-1);
  for (let i = 0; i < n; i++) tree[size + i] = capacity; // unopened bins are empty: leftmost is next to open
  for (let i = size - 1; i >= 1; i--) tree[i] = Math.max(tree[2 * i], tree[2 * i + 1]);
  const bins: number[][] = [];
  const remaining: number[] = [];
  for (let k = 0; k < n; k++) {
    const item = order[k];
    const need = sizes[item];
    if (need > capacity)
      throw new RangeError(`item ${item} of size ${need} exceeds the capacity ${capacity}`);
    let node = 1;
    while (node < size) node = tree[2 * node] >= need ? 2 * node : 2 * node + 1;
    const bin = node - size;
    if (bin === bins.length) {
      bins.push([]);
      remaining.push(capacity);
    }
    bins[bin].push(item);
    remaining[bin] -= need;
    tree[node] = bins[bin].length >= maxItems ? -1 : remaining[bin];
    for (node >>= 1; node >= 1; node >>= 1) tree[node] = Math.max(tree[2 * node], tree[2 * node + 1]);
  }
  return bins;
}

export function makeBatches(
  examples: readonly BatchExample[],
  options: BatchOptions,
): { batches: Batch[]; stats: BatchStats } {
  const L = options.packLength;
  const mode = options.mode;
  if (!Number.isInteger(L) || L < 2)
    throw new DataError(
      `packLength ${L} is too small.`,
      'Use a pack length of at least 2 tokens (typically 512–2048).',
    );
  const maxPer = options.maxFunctionsPerPack ?? DEFAULT_MAX_FUNCTIONS_PER_PACK;
  if (!(maxPer >= 1))
    throw new DataError(`maxFunctionsPerPack must be at least 1 (got ${maxPer}).`, 'Use the default of 200.');
  const packedLike = mode === 'packed' || mode === 'paper';
  const rowsPerBatch = Math.max(1, Math.floor(options.rowsPerBatch ?? (packedLike ? 1 : 8)));
  const sizes = new Int32Array(examples.length);
  examples.forEach((e, i) => {
    const n = e.tokens.length;
    if (n === 0)
      throw new DataError(
        `Example ${e.exampleIndex ?? i} has no tokens.`,
        'Drop empty functions before batching (the tokenizer does).',
      );
    if (n + 1 > L)
      throw new DataError(
        `Example ${e.exampleIndex ?? i} has ${n} tokens; with its separator it does not fit a row of ${L}.`,
        'Tokenize with maxTokens = packLength − 1 and a truncation policy (keep head/keep tail/drop).',
      );
    sizes[i] = n + 1;
  });

  const rng = epochRng(options.seed, options.epoch ?? 0);
  const order = Array.from({ length: examples.length }, (_, i) => i);
  if (options.shuffle !== false) rng.shuffle(order);

  let batchesOfRows: number[][][];
  if (mode === 'packed' || mode === 'paper') {
    let visit = order;
    if (mode === 'packed') visit = order.slice().sort((a, b) => sizes[b] - sizes[a]); // stable: ties keep the shuffle
    const rows = firstFit(sizes, visit, L, maxPer);
    if (mode === 'packed') {
      for (const r of rows) if (options.shuffle !== false) rng.shuffle(r);
      if (options.shuffle !== false) rng.shuffle(rows);
    }
    batchesOfRows = chunk(rows, rowsPerBatch);
  } else if (mode === 'padded') {
    batchesOfRows = chunk(
      order.map((i) => [i]),
      rowsPerBatch,
    );
  } else if (mode === 'bucketed') {
    const window = rowsPerBatch * Math.max(1, Math.floor(options.bucketWindow ?? 32));
    batchesOfRows = [];
    for (let w = 0; w < order.length; w += window) {
      const part = order.slice(w, w + window).sort((a, b) => sizes[a] - sizes[b]);
      batchesOfRows.push(
        ...chunk(
          part.map((i) => [i]),
          rowsPerBatch,
        ),
      );
    }
    if (options.shuffle !== false) rng.shuffle(batchesOfRows);
  } else {
    throw new DataError(`Unknown batching mode "${String(mode)}".`, 'Use padded, bucketed, packed or paper.');
  }

  const batches = batchesOfRows.map((rows) => materialize(rows, examples, sizes, options));
  let slots = 0;
  let real = 0;
  let functions = 0;
  let rowCount = 0;
  let maxRow = 0;
  for (const b of batches) {
    slots += b.rows * b.rowLength;
    real += b.realTokens;
    functions += b.functions.length;
    rowCount += b.rows;
  }
  for (const rows of batchesOfRows) for (const r of rows) maxRow = Math.max(maxRow, r.length);
  return {
    batches,
    stats: {
      mode,
      batches: batches.length,
      rows: rowCount,
      functions,
      slots,
      realTokens: real,
      paddingTokens: slots - real,
      wastedShare: slots ? (slots - real) / slots : 0,
      meanFunctionsPerRow: rowCount ? functions / rowCount : 0,
      maxFunctionsPerRow: maxRow,
    },
  };
}

function chunk<T>(items: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

function materialize(
  rows: number[][],
  examples: readonly BatchExample[],
  sizes: Int32Array,
  options: BatchOptions,
): Batch {
  const L = options.packLength;
  const mode = options.mode;
  let rowLength = L;
  if ((mode === 'padded' || mode === 'bucketed') && options.padTo !== 'pack-length') {
    rowLength = 0;
    for (const r of rows) {
      let used = 0;
      for (const i of r) used += sizes[i];
      rowLength = Math.max(rowLength, used);
    }
  }
  const total = rows.length * rowLength;
  const inputIds = new Int32Array(total).fill(options.padId);
  const segmentIds = new Int32Array(total).fill(-1);
  const positionIds = new Int32Array(total);
  const keyStart = new Int32Array(total);
  const functions: PackedFunction[] = [];
  let realTokens = 0;
  const paper = mode === 'paper';
  for (let r = 0; r < rows.length; r++) {
    const rowStart = r * rowLength;
    let t = rowStart;
    for (const i of rows[r]) {
      const ex = examples[i];
      const n = ex.tokens.length;
      const segment = functions.length;
      const start = t;
      for (let k = 0; k <= n; k++, t++) {
        inputIds[t] = k < n ? ex.tokens[k] : options.separatorId;
        segmentIds[t] = segment;
        positionIds[t] = paper ? t - rowStart : k;
        keyStart[t] = paper ? rowStart : start;
      }
      realTokens += n + 1;
      functions.push({
        pack: r,
        start,
        last: start + n - 1,
        length: n,
        segment,
        label: ex.label,
        weight: ex.weight ?? 1,
        exampleIndex: ex.exampleIndex ?? i,
      });
    }
    for (; t < rowStart + rowLength; t++) {
      positionIds[t] = paper ? t - rowStart : 0;
      keyStart[t] = t;
    }
  }
  return { rows: rows.length, rowLength, inputIds, segmentIds, positionIds, keyStart, functions, realTokens };
}
