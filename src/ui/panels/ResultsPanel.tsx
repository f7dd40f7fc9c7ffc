import { useEffect, useRef, useState } from 'react';
import { zipSync } from 'fflate';
import type { ExportedFile, SerializedError } from '../../worker/protocol.ts';
import { CurveChart, SERIES_COLORS } from '../charts/CurveChart.tsx';
import { downloadPng, downloadSvg } from '../chartExport.ts';
import { ErrorBox } from '../errors.tsx';
import { download, formatDuration, formatMetric } from '../format.ts';
import { configUrl } from '../share.ts';
import { asSerialized, engineClient, useLab, type FinishedRun, type MetricsSummary } from '../store.ts';
import { OnnxExportButton } from './OnnxDetector.tsx';

type Split = 'validation' | 'test';

function withInterval(value: number | null, interval?: { low: number; high: number }): string {
  if (value === null) return '—';
  const base = value.toFixed(3);
  if (!interval || !Number.isFinite(interval.low)) return base;
  return `${base} [${interval.low.toFixed(3)}, ${interval.high.toFixed(3)}]`;
}

const CSV_COLUMNS = [
  'run',
  'split',
  'n',
  'positives',
  'roc_auc',
  'roc_auc_low',
  'roc_auc_high',
  'pr_auc',
  'pr_auc_low',
  'pr_auc_high',
  'threshold',
  'precision',
  'recall',
  'f1',
  'f1_low',
  'f1_high',
  'self_tuned_f1_optimistic',
  'self_tuned_threshold',
  'steps',
  'best_step',
  'seconds_per_epoch',
  'batching',
  'loss',
  'lr',
] as const;

function csvCell(value: unknown): string {
  const text = value === null || value === undefined ? '' : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function metricsCsv(runs: FinishedRun[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const run of runs) {
    for (const split of ['validation', 'test'] as const) {
      const m: MetricsSummary = run[split];
      const row = [
        run.name,
        split,
        m.n,
        m.positives,
        m.rocAuc,
        m.intervals?.rocAuc.low,
        m.intervals?.rocAuc.high,
        m.prAuc,
        m.intervals?.prAuc.low,
        m.intervals?.prAuc.high,
        run.threshold,
        m.atThreshold.precision,
        m.atThreshold.recall,
        m.atThreshold.f1,
        m.intervals?.f1.low,
        m.intervals?.f1.high,
        m.selfTunedF1.f1,
        m.selfTunedF1.threshold,
        run.steps,
        run.bestStep,
        run.secondsPerEpoch,
        run.config.batching.mode,
        run.config.loss.kind,
        run.config.optimizer.lr,
      ];
      lines.push(row.map(csvCell).join(','));
    }
  }
  return lines.join('\n') + '\n';
}

function ChartWithExports({
  title,
  name,
  children,
}: {
  title: string;
  name: string;
  children: React.ReactNode;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const [problem, setProblem] = useState<string>();
  const run = async (fn: (figure: HTMLElement) => Promise<void> | void) => {
    setProblem(undefined);
    try {
      await fn(ref.current!);
    } catch (error) {
      setProblem(error instanceof Error ? error.message : String(error));
    }
  };
  return (
    <div className="chart-with-exports">
      <div ref={ref}>{children}</div>
      <div className="row">
        <button type="button" onClick={() => void run((f) => downloadSvg(f, title, name))}>
          {title}: SVG
        </button>
        <button type="button" onClick={() => void run((f) => downloadPng(f, title, name))}>
          {title}: PNG
        </button>
        {problem && (
          <span className="bad" role="alert">
            {problem}
          </span>
        )}
      </div>
    </div>
  );
}

function MetricsTable({ runs }: { runs: FinishedRun[] }) {
  return (
    <div className="table-scroll">
      <table className="metrics" data-testid="metrics-table">
        <caption className="muted small">
          95% bootstrap intervals in brackets. Precision, recall and F1 use the threshold chosen on validation
          and applied unchanged to test. “Self-tuned F1” picks the best threshold on the very set it scores
          (the paper’s protocol) and is optimistic.
        </caption>
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Split</th>
            <th scope="col">n (vuln.)</th>
            <th scope="col">ROC AUC</th>
            <th scope="col">PR AUC</th>
            <th scope="col">F1</th>
            <th scope="col">Precision</th>
            <th scope="col">Recall</th>
            <th scope="col">Self-tuned F1 (optimistic)</th>
          </tr>
        </thead>
        <tbody>
          {runs.flatMap((run) =>
            (['validation', 'test'] as const).map((split) => {
              const m = run[split];
              return (
                <tr key={run.id + split}>
                  {split === 'validation' && (
                    <th scope="rowgroup" rowSpan={2}>
                      {run.name}
                    </th>
                  )}
                  <td>{split}</td>
                  <td>
                    {m.n} ({m.positives})
                  </td>
                  <td>{withInterval(m.rocAuc, m.intervals?.rocAuc)}</td>
                  <td>{withInterval(m.prAuc, m.intervals?.prAuc)}</td>
                  <td>{withInterval(m.atThreshold.f1, m.intervals?.f1)}</td>
                  <td>{formatMetric(m.atThreshold.precision)}</td>
                  <td>{formatMetric(m.atThreshold.recall)}</td>
                  <td>{formatMetric(m.selfTunedF1.f1)}</td>
                </tr>
              );
            }),
          )}
        </tbody>
      </table>
    </div>
  );
}

function AdapterExport() {
  const live = useLab((s) => s.live);
  const [files, setFiles] = useState<{ name: string; url: string; size: number }[]>();
  const [zipUrl, setZipUrl] = useState<string>();
  const [error, setError] = useState<SerializedError>();
  const [busy, setBusy] = useState(false);
  useEffect(
    () => () => {
      files?.forEach((f) => URL.revokeObjectURL(f.url));
      if (zipUrl) URL.revokeObjectURL(zipUrl);
    },
    [files, zipUrl],
  );
  const exportAdapter = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const exported: ExportedFile[] = await engineClient().request({ type: 'exportAdapter' });
      setFiles(
        exported.map((f) => ({
          name: f.name,
          size: f.bytes.byteLength,
          url: URL.createObjectURL(new Blob([f.bytes as BlobPart])),
        })),
      );
      const zip = zipSync(Object.fromEntries(exported.map((f) => [f.name, f.bytes])));
      setZipUrl(URL.createObjectURL(new Blob([zip as BlobPart], { type: 'application/zip' })));
    } catch (e) {
      setError(asSerialized(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="adapter-export">
      <button type="button" disabled={busy} onClick={() => void exportAdapter()}>
        Export the PEFT adapter of the {live ? 'latest run' : 'current run'}
      </button>
      <span className="muted small">
        {' '}
        adapter_config.json + adapter_model.safetensors, loadable with peft’s PeftModel.from_pretrained.
      </span>
      {files && (
        <ul data-testid="adapter-files">
          {files.map((f) => (
            <li key={f.name}>
              <a href={f.url} download={f.name}>
                {f.name}
              </a>{' '}
              <span className="muted">({f.size} bytes)</span>
            </li>
          ))}
          {zipUrl && (
            <li>
              <a href={zipUrl} download="peft-adapter.zip">
                both as peft-adapter.zip
              </a>
            </li>
          )}
        </ul>
      )}
      {error && <ErrorBox error={error} testId="export-error" />}
    </div>
  );
}

function ShareLink({ run }: { run: FinishedRun }) {
  const url = configUrl(run.config);
  const [copied, setCopied] = useState(false);
  return (
    <span className="share">
      <input
        type="text"
        readOnly
        value={url}
        aria-label={`shareable link of ${run.name}`}
        size={30}
        onFocus={(e) => e.target.select()}
      />
      <button
        type="button"
        onClick={() =>
          void navigator.clipboard
            ?.writeText(url)
            .then(() => setCopied(true))
            .catch(() => setCopied(false))
        }
      >
        {copied ? 'Copied' : 'Copy link'}
      </button>
    </span>
  );
}

export function ResultsPanel() {
  const runs = useLab((s) => s.runs);
  const selected = useLab((s) => s.selected);
  const toggleSelected = useLab((s) => s.toggleSelected);
  const deleteRun = useLab((s) => s.deleteRun);
  const setDraft = useLab((s) => s.setDraft);
  const setPanel = useLab((s) => s.setPanel);
  const [split, setSplit] = useState<Split>('test');
  const chosen = runs.filter((r) => selected.includes(r.id));

  if (!runs.length) {
    return (
      <div className="results-panel">
        <p>
          No finished runs yet. Run the classroom demo or start a run in the Train panel; finished runs are
          kept here across reloads.
        </p>
        <AdapterExport />
        <OnnxExportButton />
      </div>
    );
  }
  const roc = chosen.map((run, i) => ({
    name: `${run.name} · AUC ${formatMetric(run[split].rocAuc)}`,
    points: run[split].roc,
    color: SERIES_COLORS[i % SERIES_COLORS.length],
  }));
  const pr = chosen.map((run, i) => ({
    name: `${run.name} · AP ${formatMetric(run[split].prAuc)}`,
    points: run[split].pr,
    color: SERIES_COLORS[i % SERIES_COLORS.length],
  }));
  return (
    <div className="results-panel">
      <section aria-labelledby="runs-title">
        <h3 id="runs-title">Finished runs</h3>
        <div className="table-scroll">
          <table data-testid="runs-table">
            <thead>
              <tr>
                <th scope="col">Compare</th>
                <th scope="col">Run</th>
                <th scope="col">Model · data</th>
                <th scope="col">Steps</th>
                <th scope="col">Time / epoch</th>
                <th scope="col">Val. ROC AUC</th>
                <th scope="col">Test ROC AUC</th>
                <th scope="col">Settings</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {[...runs].reverse().map((run) => (
                <tr key={run.id}>
                  <td>
                    <input
                      type="checkbox"
                      checked={selected.includes(run.id)}
                      onChange={() => toggleSelected(run.id)}
                      aria-label={`compare ${run.name}`}
                    />
                  </td>
                  <th scope="row">
                    {run.name}
                    <div className="muted small">
                      {new Date(run.finishedAt).toLocaleString()} · {run.state}
                    </div>
                  </th>
                  <td>
                    {run.model} · {run.dataset}
                  </td>
                  <td>{run.steps}</td>
                  <td>{formatDuration(run.secondsPerEpoch)}</td>
                  <td>{formatMetric(run.validation.rocAuc)}</td>
                  <td>{formatMetric(run.test.rocAuc)}</td>
                  <td>
                    <ShareLink run={run} />
                    <button
                      type="button"
                      onClick={() => {
                        setDraft(run.config);
                        setPanel('train');
                      }}
                    >
                      Use in Train
                    </button>
                  </td>
                  <td>
                    <button type="button" onClick={() => deleteRun(run.id)} aria-label={`delete ${run.name}`}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>

      <section aria-labelledby="compare-title">
        <h3 id="compare-title">
          Compare{' '}
          {chosen.length ? `${chosen.length} run${chosen.length === 1 ? '' : 's'}` : '(tick runs above)'}
        </h3>
        <fieldset className="row inline">
          <legend>Curves on</legend>
          {(['validation', 'test'] as const).map((s) => (
            <label key={s}>
              <input type="radio" name="curve-split" checked={split === s} onChange={() => setSplit(s)} /> {s}
            </label>
          ))}
        </fieldset>
        {chosen.length > 0 && (
          <>
            <div className="charts-grid">
              <ChartWithExports title={`ROC (${split})`} name={`roc-${split}`}>
                <CurveChart kind="roc" series={roc} testId="results-roc" />
              </ChartWithExports>
              <ChartWithExports title={`Precision-recall (${split})`} name={`pr-${split}`}>
                <CurveChart kind="pr" series={pr} testId="results-pr" />
              </ChartWithExports>
            </div>
            <MetricsTable runs={chosen} />
          </>
        )}
      </section>

      <section aria-labelledby="exports-title">
        <h3 id="exports-title">Exports</h3>
        <div className="row">
          <button
            type="button"
            disabled={!chosen.length}
            onClick={() =>
              download('vulnlab-metrics.json', JSON.stringify(chosen, null, 2), 'application/json')
            }
          >
            Metrics of the compared runs: JSON
          </button>
          <button
            type="button"
            disabled={!chosen.length}
            onClick={() => download('vulnlab-metrics.csv', metricsCsv(chosen), 'text/csv')}
          >
            Metrics: CSV
          </button>
        </div>
        <AdapterExport />
        <OnnxExportButton />
      </section>
    </div>
  );
}
