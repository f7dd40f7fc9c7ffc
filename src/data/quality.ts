/**
 * Dataset quality report: what a user should know before spending GPU time on a dataset.
 */
import { duplicateKey } from './normalize';
import { summarize, type SplitSummary } from './splits';
import type { Tokenizer } from './tokenize';
import type { DataRecord, SplitName } from './types';

export interface QualityOptions {
  /** Token length per record (aligned with the records); computed with `tokenizer` when absent. */
  lengths?: readonly number[];
  tokenizer?: Tokenizer;
  /** Pack length L: a function is truncated when its tokens + separator exceed L. Default 2048. */
  contextLength?: number;
  /** Split per record (e.g. from assignSplits); default the records' split field. */
  splits?: readonly (SplitName | undefined)[];
  /** Upper bin edges of the length histogram (default 64 … 4096, then ∞). */
  histogramEdges?: readonly number[];
}

export type QualityWarningCode =
  | 'one-class'
  | 'one-class-split'
  | 'tiny-test'
  | 'no-test'
  | 'imbalance'
  | 'conflicting-labels'
  | 'cross-split-duplicates'
  | 'duplicates'
  | 'truncation';

export interface QualityWarning {
  code: QualityWarningCode;
  severity: 'info' | 'warning' | 'error';
  message: string;
}

export interface DuplicateStats {
  /** Distinct code bodies that occur more than once. */
  groups: number;
  /** Records beyond the first of each group (what deduplication would remove). */
  extraCopies: number;
}

export interface QualityReport {
  total: number;
  positives: number;
  negatives: number;
  positiveShare: number;
  exactDuplicates: DuplicateStats;
  /** After dropping comments and formatting (whitespace) differences. */
  normalizedDuplicates: DuplicateStats;
  /** Normalized-duplicate groups whose records carry both labels. */
  conflictingLabels: { groups: number; records: number; examples: number[][] };
  /** Normalized-duplicate groups present in more than one split (train/test leakage). */
  crossSplitDuplicates: { groups: number; records: number };
  lengths?: {
    contextLength: number;
    mean: number;
    median: number;
    p90: number;
    max: number;
    histogram: { from: number; to: number; count: number }[];
    truncatedCount: number;
    truncatedShare: number;
  };
  perCwe: { cwe: string; positives: number; negatives: number }[];
  /** Present when any record has a split. */
  perSplit?: SplitSummary[];
  warnings: QualityWarning[];
}

const DEFAULT_EDGES = [64, 128, 256, 512, 1024, 2048, 4096];

export function qualityReport(records: readonly DataRecord[], options: QualityOptions = {}): QualityReport {
  const total = records.length;
  let positives = 0;
  for (const r of records) positives += r.label;
  const negatives = total - positives;
  const splits = options.splits ?? records.map((r) => r.split);
  const warnings: QualityWarning[] = [];

  // Duplicates.
  const exact = new Map<string, number>();
  for (const r of records) exact.set(r.code, (exact.get(r.code) ?? 0) + 1);
  const exactDuplicates = dupStats(exact.values());
  const norm = new Map<string, number[]>();
  records.forEach((r, i) => {
    const k = duplicateKey(r.code);
    const list = norm.get(k);
    if (list) list.push(i);
    else norm.set(k, [i]);
  });
  const normalizedDuplicates = dupStats([...norm.values()].map((l) => l.length));
  const conflictingLabels = { groups: 0, records: 0, examples: [] as number[][] };
  const crossSplitDuplicates = { groups: 0, records: 0 };
  for (const list of norm.values()) {
    if (list.length < 2) continue;
    const labels = new Set(list.map((i) => records[i].label));
    if (labels.size > 1) {
      conflictingLabels.groups++;
      conflictingLabels.records += list.length;
      if (conflictingLabels.examples.length < 5) conflictingLabels.examples.push(list.slice(0, 10));
    }
    const inSplits = new Set(list.map((i) => splits[i]).filter((s) => s !== undefined));
    if (inSplits.size > 1) {
      crossSplitDuplicates.groups++;
      crossSplitDuplicates.records += list.length;
    }
  }

  // Per CWE.
  const cwe = new Map<string, { positives: number; negatives: number }>();
  for (const r of records) {
    const k = r.cwe ?? '(none)';
    let c = cwe.get(k);
    if (!c) cwe.set(k, (c = { positives: 0, negatives: 0 }));
    if (r.label === 1) c.positives++;
    else c.negatives++;
  }
  const perCwe = [...cwe.entries()]
    .map(([k, c]) => ({ cwe: k, ...c }))
    .sort((a, b) => b.positives + b.negatives - (a.positives + a.negatives) || a.cwe.localeCompare(b.cwe));

  const report: QualityReport = {
    total,
    positives,
    negatives,
    positiveShare: total ? positives / total : NaN,
    exactDuplicates,
    normalizedDuplicates,
    conflictingLabels,
    crossSplitDuplicates,
    perCwe,
    warnings,
  };

  // Lengths.
  const lengths =
    options.lengths ??
    (options.tokenizer ? records.map((r) => options.tokenizer!.encode(r.code).length) : undefined);
  if (lengths && lengths.length === total && total > 0) {
    const L = options.contextLength ?? 2048;
    const sorted = lengths.slice().sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(total - 1, Math.max(0, Math.ceil(q * total) - 1))];
    const edges = options.histogramEdges ?? DEFAULT_EDGES;
    const histogram: { from: number; to: number; count: number }[] = [];
    let from = 0;
    for (const to of [...edges, Infinity]) {
      histogram.push({ from, to, count: 0 });
      from = to;
    }
    let truncatedCount = 0;
    for (const n of lengths) {
      const bin = histogram.findIndex((h) => n < h.to);
      histogram[bin === -1 ? histogram.length - 1 : bin].count++;
      if (n + 1 > L) truncatedCount++;
    }
    report.lengths = {
      contextLength: L,
      mean: lengths.reduce((a, b) => a + b, 0) / total,
      median: at(0.5),
      p90: at(0.9),
      max: sorted[total - 1],
      histogram,
      truncatedCount,
      truncatedShare: truncatedCount / total,
    };
    if (truncatedCount / total > 0.1)
      warnings.push({
        code: 'truncation',
        severity: 'warning',
        message: `${pct(truncatedCount / total)} of functions are longer than the context of ${L} tokens and will be truncated; consider a longer pack length or the keep-tail policy.`,
      });
  }

  // Warnings.
  if (total > 0 && (positives === 0 || negatives === 0))
    warnings.push({
      code: 'one-class',
      severity: 'error',
      message: `All ${total} functions are ${positives ? 'vulnerable' : 'not vulnerable'}: ROC AUC is undefined and a classifier cannot be trained. Add examples of the other class.`,
    });
  else if (total > 0) {
    const minority = Math.min(positives, negatives) / total;
    if (minority < 0.2)
      warnings.push({
        code: 'imbalance',
        severity: 'warning',
        message: `Heavy class imbalance (1:${Math.round(Math.max(positives, negatives) / Math.min(positives, negatives))}): use focal loss (gamma 1–2) and/or class or sample weights, and judge by ROC AUC rather than accuracy.`,
      });
  }
  if (conflictingLabels.groups)
    warnings.push({
      code: 'conflicting-labels',
      severity: 'warning',
      message: `${conflictingLabels.groups} function bod${conflictingLabels.groups === 1 ? 'y appears' : 'ies appear'} with both labels (after normalization); no model can separate them.`,
    });
  if (normalizedDuplicates.extraCopies / Math.max(1, total) > 0.05)
    warnings.push({
      code: 'duplicates',
      severity: 'info',
      message: `${pct(normalizedDuplicates.extraCopies / total)} of functions duplicate another (ignoring comments and formatting).`,
    });
  if (splits.some((s) => s !== undefined)) {
    const perSplit = summarize(records, splits);
    report.perSplit = perSplit;
    const test = perSplit.find((s) => s.split === 'test')!;
    if (test.size === 0)
      warnings.push({
        code: 'no-test',
        severity: 'warning',
        message: 'The test split is empty; results cannot be reported.',
      });
    else if (test.size < 50 || Math.min(test.positives, test.negatives) < 10)
      warnings.push({
        code: 'tiny-test',
        severity: 'warning',
        message: `The test split is tiny (${test.size} functions, ${test.positives} vulnerable / ${test.negatives} not): expect ROC AUC to vary by several points between seeds.`,
      });
    for (const s of perSplit)
      if (s.size > 0 && s.split !== 'train' && (s.positives === 0 || s.negatives === 0))
        warnings.push({
          code: 'one-class-split',
          severity: 'error',
          message: `The ${s.split} split has only ${s.positives ? 'vulnerable' : 'non-vulnerable'} functions: ROC AUC is undefined on it.`,
        });
    if (crossSplitDuplicates.groups)
      warnings.push({
        code: 'cross-split-duplicates',
        severity: 'warning',
        message: `${crossSplitDuplicates.groups} function bod${crossSplitDuplicates.groups === 1 ? 'y sits' : 'ies sit'} in more than one split (leakage); use a split grouped by commit or project.`,
      });
  }
  return report;
}

function dupStats(counts: Iterable<number>): DuplicateStats {
  let groups = 0;
  let extraCopies = 0;
  for (const c of counts)
    if (c > 1) {
      groups++;
      extraCopies += c - 1;
    }
  return { groups, extraCopies };
}

function pct(x: number): string {
  return `${(100 * x).toFixed(x < 0.1 ? 1 : 0)}%`;
}
