import { CurveChart, SERIES_COLORS } from '../charts/CurveChart.tsx';
import { formatDuration, formatMetric, formatPercent } from '../format.ts';
import { useLab } from '../store.ts';

const STATUS: Record<string, string> = {
  waiting: 'waiting',
  running: 'training…',
  done: 'done',
  failed: 'failed',
};

/** The paper's ablations run back to back on the demo: packing vs padding, focal vs cross-entropy. */
export function AblationView() {
  const ablation = useLab((s) => s.ablation);
  const runs = useLab((s) => s.runs);
  if (!ablation) return null;
  const rows = ablation.rows.map((row) => ({ row, run: runs.find((r) => r.id === row.runId) }));
  const series = rows
    .filter((r) => r.run)
    .map(({ row, run }, i) => ({
      name: `${row.label} · AUC ${formatMetric(run!.test.rocAuc)}`,
      points: run!.test.roc,
      color: SERIES_COLORS[i],
    }));
  const packed = rows[0].run;
  const padded = rows[1].run;
  const speedup =
    packed && padded && packed.secondsPerEpoch > 0
      ? padded.secondsPerEpoch / packed.secondsPerEpoch
      : undefined;
  return (
    <section className="ablation" aria-labelledby="ablation-title" data-testid="ablation">
      <h3 id="ablation-title">Ablations side by side</h3>
      <table>
        <thead>
          <tr>
            <th scope="col">Variant</th>
            <th scope="col">Status</th>
            <th scope="col">Time per epoch</th>
            <th scope="col">Padding</th>
            <th scope="col">Validation ROC AUC</th>
            <th scope="col">Test ROC AUC</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(({ row, run }) => (
            <tr key={row.key}>
              <th scope="row">{row.label}</th>
              <td>{STATUS[row.status]}</td>
              <td>{run ? formatDuration(run.secondsPerEpoch) : '—'}</td>
              <td>{run?.wastedShare !== undefined ? formatPercent(run.wastedShare) : '—'}</td>
              <td>{formatMetric(run?.validation.rocAuc)}</td>
              <td>{formatMetric(run?.test.rocAuc)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {series.length > 0 && <CurveChart kind="roc" series={series} testId="ablation-roc" height={280} />}
      <div className="explain">
        <p>
          <strong>Packing vs padding.</strong> Java functions have very different lengths. Padding puts one
          function per row and fills the rest with blanks the GPU still computes; packing puts several
          functions in one row and masks attention so they cannot see each other. Same model, same data, same
          result — but less wasted work
          {speedup ? `: here padding took ${speedup.toFixed(1)}× as long per epoch` : ''}.
        </p>
        <p>
          <strong>Focal loss vs cross-entropy.</strong> Most functions are easy to classify. Cross-entropy
          keeps learning from them; focal loss turns down their weight so training time goes to the hard,
          ambiguous ones. On real, imbalanced vulnerability data this is what the paper found helps; on the
          tiny demo the two curves may be close.
        </p>
        <p className="muted">
          The demo model is tiny and starts from random weights: it learns surface patterns of the demo
          dataset, not real security knowledge.
        </p>
      </div>
    </section>
  );
}
