/** The CLI's output files: metrics as JSON (snake_case, the issue's keys) and per-example scores as CSV. */
import type { EvalMetrics, ScoredExample } from '../train/evaluate.ts';

export const fmt = (value: number | null) => (value === null ? 'n/a' : value.toFixed(4));

export function metricsSummary(m: EvalMetrics, threshold: number) {
  return {
    n: m.n,
    positives: m.positives,
    roc_auc: m.rocAuc,
    pr_auc: m.prAuc,
    pr_auc_trapezoid: m.prAucTrapezoid,
    f1: m.atThreshold.f1,
    precision: m.atThreshold.precision,
    recall: m.atThreshold.recall,
    threshold,
    confusion_matrix: m.atThreshold.confusion,
    f1_threshold_tuned_on_this_set: m.selfTunedF1.f1,
    intervals_95: m.intervals && {
      roc_auc: [m.intervals.rocAuc.low, m.intervals.rocAuc.high],
      pr_auc: [m.intervals.prAuc.low, m.intervals.prAuc.high],
      f1: [m.intervals.f1.low, m.intervals.f1.high],
    },
    per_cwe_roc_auc: Object.fromEntries(Object.entries(m.perCwe).map(([cwe, g]) => [cwe, g.rocAuc])),
  };
}

/** `split,example_index,label,score,cwe` — one row per scored function. */
export function scoresCsv(groups: readonly { split: string; examples: readonly ScoredExample[] }[]): string {
  const rows = ['split,example_index,label,score,cwe'];
  for (const { split, examples } of groups) {
    for (const e of examples) rows.push(`${split},${e.exampleIndex},${e.label},${e.score},${e.cwe ?? ''}`);
  }
  return rows.join('\n') + '\n';
}

/** A method's place in its file: 1-based lines, 1-based UTF-16 columns, `endColumn` one past its last character. */
export interface SourceRegion {
  startLine: number;
  startColumn: number;
  endLine: number;
  endColumn: number;
}

/** A method longer than the model's context, scored on part of its tokens. */
export interface Truncation {
  /** Which end was kept: the run's `truncation` setting. */
  kept: 'head' | 'tail';
  scoredTokens: number;
  totalTokens: number;
}

export interface ScannedMethod {
  /** The file as shown to a person (the path it was named by). */
  file: string;
  /** The file relative to the scan's root, a URI reference. */
  uri: string;
  /** Same as region.startLine (the key earlier versions printed). */
  line: number;
  region: SourceRegion;
  /** Enclosing types and name, `Outer.Inner.method`. */
  method: string;
  probability: number;
  /** null when no threshold is known (no `--threshold` and an adapter without the run's settings). */
  flagged: boolean | null;
  truncated?: Truncation;
  /** The vulnerability family (e.g. `CWE-89`) when the detector names one; today's detectors are binary. */
  cwe?: string;
  /**
   * The lines that drove the score, strongest first (`scan --explain`): `weight` is the line's share
   * of the method's attribution (train/explain.ts); SARIF writes them as `relatedLocations`.
   */
  topLines?: { startLine: number; endLine?: number; weight: number }[];
}

export type ScanIssueKind = 'unreadable' | 'not-utf8' | 'not-java' | 'truncated' | 'too-long';

/** Something the scan could not do as asked; the scan of everything else goes on. */
export interface ScanIssue {
  kind: ScanIssueKind;
  file: string;
  uri: string;
  message: string;
  /** The line of the problem (the first byte that is not UTF-8, the parse error) or the method's region. */
  region?: Partial<SourceRegion> & { startLine: number };
  method?: string;
}

export interface ScanReport {
  /** Absolute folder the `uri`s are relative to. */
  root: string;
  model: string;
  adapter: string;
  threshold: number | null;
  /** `--explain`: how the top lines were attributed. */
  explain?: { method: 'ig' | 'grad'; steps?: number; score: string };
  /** Files read (parsed or not). */
  files: number;
  /** Riskiest first. */
  methods: ScannedMethod[];
  issues: ScanIssue[];
}

export const truncationNote = (t: Truncation) =>
  `scored on its ${t.kept === 'head' ? 'first' : 'last'} ${t.scoredTokens} of ${t.totalTokens} tokens`;

/** The human-readable table: one line per method, `!` marks flagged ones, `~` truncated ones. */
export function scanTable(report: ScanReport): string {
  const { methods, threshold } = report;
  const flagged = methods.filter((m) => m.flagged).length;
  const lines = [
    `${methods.length} methods in ${report.files} files${threshold === null ? '' : `; flagged at p ≥ ${threshold.toFixed(3)}: ${flagged}`}`,
  ];
  for (const m of methods) {
    const mark = `${m.flagged ? '!' : ' '}${m.truncated ? '~' : ' '}`;
    const note = m.truncated ? `  (${truncationNote(m.truncated)})` : '';
    lines.push(`${mark} ${m.probability.toFixed(4)}  ${m.file}:${m.line}  ${m.method}${note}`);
    for (const t of m.topLines ?? []) {
      lines.push(`            line ${t.startLine}  ${(t.weight * 100).toFixed(0).padStart(3)}%`);
    }
  }
  if (methods.some((m) => m.truncated)) lines.push('~ longer than the model’s context: scored truncated');
  if (report.issues.length > 0) {
    const skipped = report.issues.filter((i) => i.kind !== 'truncated').length;
    if (skipped > 0) lines.push(`${skipped} files or methods skipped (see stderr)`);
  }
  return lines.join('\n');
}

/** `--format json`: the report as it is, plus the threshold for readers that only want the methods. */
export function scanJson(report: ScanReport): string {
  return JSON.stringify(report, null, 2);
}
