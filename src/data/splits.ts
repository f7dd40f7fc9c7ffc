/**
 * Train/validation/test splits.
 * - `field`: the records' own split field (records without one are split stratified among themselves).
 * - `stratified`: seeded random split per class, so each split keeps the overall class balance.
 * - `grouped`: whole groups (project, commit or file) go to one split, and records with the same
 *   normalized code are kept together too, so near-identical code cannot sit on both sides (the
 *   leakage the paper's threats to validity raise). Groups are assigned largest first to the split
 *   furthest below its target size.
 * - `auto`: `field` when any record has a split, else `stratified`.
 */
import { Rng } from '../shared/random.ts';
import { duplicateKey } from './normalize';
import { SPLIT_NAMES, type DataRecord, type SplitName } from './types';

export type SplitStrategy = 'auto' | 'field' | 'stratified' | 'grouped';
export type GroupKey = 'project' | 'commit' | 'file';

export interface SplitFractions {
  train: number;
  validation: number;
  test: number;
}

export interface SplitOptions {
  strategy?: SplitStrategy;
  /** For `grouped` (default commit). */
  groupBy?: GroupKey;
  /** Default 0.8 / 0.1 / 0.1. */
  fractions?: SplitFractions;
  seed: number;
}

export interface SplitSummary {
  split: SplitName;
  size: number;
  positives: number;
  negatives: number;
  /** positives / size (NaN when empty). */
  positiveShare: number;
  /** Distinct groups in the split (grouped strategy only). */
  groups?: number;
}

export interface SplitResult {
  /** One split per record, aligned with the input. */
  assignment: SplitName[];
  strategy: Exclude<SplitStrategy, 'auto'>;
  groupBy?: GroupKey;
  summary: SplitSummary[];
  notes: string[];
}

export const DEFAULT_FRACTIONS: SplitFractions = { train: 0.8, validation: 0.1, test: 0.1 };

export function assignSplits(records: readonly DataRecord[], options: SplitOptions): SplitResult {
  const fractions = normalizeFractions(options.fractions ?? DEFAULT_FRACTIONS);
  const requested = options.strategy ?? 'auto';
  const strategy: Exclude<SplitStrategy, 'auto'> =
    requested === 'auto' ? (records.some((r) => r.split) ? 'field' : 'stratified') : requested;
  const rng = new Rng(options.seed);
  const assignment: SplitName[] = new Array(records.length);
  const notes: string[] = [];
  let groupsPerSplit: Map<SplitName, Set<number>> | undefined;

  if (strategy === 'field') {
    const missing: number[] = [];
    records.forEach((r, i) => {
      if (r.split) assignment[i] = r.split;
      else missing.push(i);
    });
    if (missing.length) {
      stratify(records, missing, fractions, rng, assignment);
      notes.push(`${missing.length} record(s) had no split field and were split stratified at random.`);
    }
  } else if (strategy === 'stratified') {
    stratify(
      records,
      records.map((_, i) => i),
      fractions,
      rng,
      assignment,
    );
  } else {
    const key = options.groupBy ?? 'commit';
    const { groups, missingKey } = buildGroups(records, key);
    if (missingKey)
      notes.push(`${missingKey} record(s) had no ${key}; each was grouped with its duplicates only.`);
    groupsPerSplit = new Map(SPLIT_NAMES.map((s) => [s, new Set<number>()]));
    const order = rng.shuffle(groups.map((_, g) => g)).sort((a, b) => groups[b].length - groups[a].length);
    const size: Record<SplitName, number> = { train: 0, validation: 0, test: 0 };
    const target: Record<SplitName, number> = {
      train: fractions.train * records.length,
      validation: fractions.validation * records.length,
      test: fractions.test * records.length,
    };
    for (const g of order) {
      let best: SplitName = 'train';
      let bestScore = -Infinity;
      for (const s of SPLIT_NAMES) {
        if (target[s] <= 0) continue;
        const score = (target[s] - size[s]) / target[s];
        if (score > bestScore) {
          bestScore = score;
          best = s;
        }
      }
      for (const i of groups[g]) assignment[i] = best;
      size[best] += groups[g].length;
      groupsPerSplit.get(best)!.add(g);
    }
    if (groups.length < 3) notes.push(`Only ${groups.length} group(s): some splits are empty.`);
  }

  const summary = summarize(records, assignment);
  if (groupsPerSplit) for (const s of summary) s.groups = groupsPerSplit.get(s.split)!.size;
  const result: SplitResult = { assignment, strategy, summary, notes };
  if (strategy === 'grouped') result.groupBy = options.groupBy ?? 'commit';
  return result;
}

/** Copies of the records with their split set. */
export function applySplits(records: readonly DataRecord[], assignment: readonly SplitName[]): DataRecord[] {
  return records.map((r, i) => ({ ...r, split: assignment[i] }));
}

export function summarize(
  records: readonly DataRecord[],
  assignment: readonly (SplitName | undefined)[],
): SplitSummary[] {
  return SPLIT_NAMES.map((split) => {
    let positives = 0;
    let negatives = 0;
    records.forEach((r, i) => {
      if (assignment[i] !== split) return;
      if (r.label === 1) positives++;
      else negatives++;
    });
    const size = positives + negatives;
    return { split, size, positives, negatives, positiveShare: size ? positives / size : NaN };
  });
}

function normalizeFractions(f: SplitFractions): SplitFractions {
  const sum = f.train + f.validation + f.test;
  if (!(sum > 0) || f.train < 0 || f.validation < 0 || f.test < 0)
    throw new RangeError('split fractions must be non-negative and not all zero');
  return { train: f.train / sum, validation: f.validation / sum, test: f.test / sum };
}

function stratify(
  records: readonly DataRecord[],
  indices: number[],
  f: SplitFractions,
  rng: Rng,
  out: SplitName[],
): void {
  for (const label of [0, 1] as const) {
    const idx = rng.shuffle(indices.filter((i) => records[i].label === label));
    const n = idx.length;
    let nTest = Math.round(n * f.test);
    let nVal = Math.round(n * f.validation);
    // Small classes: keep at least one example in each evaluation split that asked for any.
    if (f.test > 0 && nTest === 0 && n >= 2) nTest = 1;
    if (f.validation > 0 && nVal === 0 && n >= 3) nVal = 1;
    if (nTest + nVal > n) nVal = Math.max(0, n - nTest);
    idx.forEach((i, k) => {
      out[i] = k < nTest ? 'test' : k < nTest + nVal ? 'validation' : 'train';
    });
  }
}

/** Connected components of "same group key" ∪ "same normalized code". */
function buildGroups(
  records: readonly DataRecord[],
  key: GroupKey,
): { groups: number[][]; missingKey: number } {
  const parent = records.map((_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  };
  const union = (a: number, b: number) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  const byKey = new Map<string, number>();
  const byCode = new Map<string, number>();
  let missingKey = 0;
  records.forEach((r, i) => {
    const k = r[key];
    if (k !== undefined && k !== '') {
      const first = byKey.get(k);
      if (first === undefined) byKey.set(k, i);
      else union(first, i);
    } else missingKey++;
    const d = duplicateKey(r.code);
    const firstCode = byCode.get(d);
    if (firstCode === undefined) byCode.set(d, i);
    else union(firstCode, i);
  });
  const comps = new Map<number, number[]>();
  records.forEach((_, i) => {
    const root = find(i);
    let list = comps.get(root);
    if (!list) comps.set(root, (list = []));
    list.push(i);
  });
  return { groups: [...comps.values()], missingKey };
}
