/** The CLI's output files: metrics as JSON (snake_case, the keys) and per-example scores as CSV. */
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
