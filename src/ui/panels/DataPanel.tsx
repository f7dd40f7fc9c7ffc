import { useState, type DragEvent } from 'react';
import type { FieldMapping } from '../../data/fields.ts';
import type { QualityReport } from '../../data/quality.ts';
import type { DatasetInfo } from '../../worker/protocol.ts';
import { BarsChart } from '../charts/BarsChart.tsx';
import { SERIES_COLORS } from '../charts/CurveChart.tsx';
import { ErrorBox } from '../errors.tsx';
import { formatPercent } from '../format.ts';
import { useLab } from '../store.ts';

const ACCEPT = '.jsonl,.ndjson,.json,.csv,.tsv,.parquet,.zip,.java';
const MAPPED_FIELDS: (keyof FieldMapping)[] = [
  'code',
  'label',
  'cwe',
  'split',
  'project',
  'commit',
  'file',
  'id',
  'weight',
];

function DropZone({ disabled }: { disabled: boolean }) {
  const importData = useLab((s) => s.importData);
  const [over, setOver] = useState(false);
  const take = (files: FileList | null) => {
    if (!files || files.length === 0) return;
    const list = [...files];
    const name = list.length === 1 ? list[0].name : `${list.length} files`;
    void importData({ kind: 'files', files: list }, name);
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    if (!disabled) take(e.dataTransfer.files);
  };
  return (
    <div
      className={`drop-zone${over ? ' over' : ''}`}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={onDrop}
      data-testid="data-drop"
    >
      <p>Drop dataset files here, or</p>
      <label className="file-button">
        Choose files…
        <input
          type="file"
          multiple
          accept={ACCEPT}
          disabled={disabled}
          data-testid="data-files"
          onChange={(e) => {
            take(e.target.files);
            e.target.value = '';
          }}
        />
      </label>
      <p className="muted small">
        JSONL, JSON, CSV/TSV, Parquet, a zip, or .java files. Several files are merged into one dataset.
        Nothing is uploaded anywhere.
      </p>
    </div>
  );
}

function Mapping({ info }: { info: DatasetInfo }) {
  const data = useLab((s) => s.data);
  const importData = useLab((s) => s.importData);
  const columns = (info as DatasetInfo & { columns?: string[] }).columns;
  const [override, setOverride] = useState<Partial<FieldMapping>>({});
  const detected = info.fieldMapping ?? {};
  const canRemap =
    data.source?.kind === 'files' && ['jsonl', 'json', 'csv', 'tsv', 'parquet', 'zip'].includes(info.format);
  return (
    <section aria-labelledby="mapping-title" data-testid="mapping">
      <h3 id="mapping-title">Field mapping</h3>
      <p className="muted">
        Which column holds what, detected from the column names. Change a column and re-import if it is wrong.
      </p>
      <datalist id="column-names">
        {(columns ?? []).map((c) => (
          <option key={c} value={c} />
        ))}
      </datalist>
      <table className="mapping">
        <thead>
          <tr>
            <th scope="col">Field</th>
            <th scope="col">Detected column</th>
            {canRemap && <th scope="col">Use column</th>}
          </tr>
        </thead>
        <tbody>
          {MAPPED_FIELDS.filter((f) => f === 'code' || f === 'label' || detected[f] || canRemap).map((f) => (
            <tr key={f} data-field={f}>
              <th scope="row">{f}</th>
              <td data-testid={`mapping-${f}`}>{detected[f] ?? <span className="muted">—</span>}</td>
              {canRemap && (
                <td>
                  <input
                    type="text"
                    list="column-names"
                    aria-label={`column for ${f}`}
                    value={override[f] ?? ''}
                    placeholder={detected[f] ?? ''}
                    onChange={(e) => setOverride({ ...override, [f]: e.target.value || undefined })}
                  />
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {canRemap && data.source && (
        <button
          type="button"
          disabled={Object.values(override).every((v) => !v)}
          onClick={() =>
            void importData(data.source!, data.name ?? 'dataset', {
              ...(data.fields ?? {}),
              ...Object.fromEntries(Object.entries(override).filter(([, v]) => v)),
            })
          }
        >
          Re-import with this mapping
        </button>
      )}
    </section>
  );
}

function Preview({ info }: { info: DatasetInfo }) {
  return (
    <section aria-labelledby="preview-title">
      <h3 id="preview-title">First rows</h3>
      <div className="table-scroll">
        <table className="preview" data-testid="preview">
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">label</th>
              <th scope="col">CWE</th>
              <th scope="col">split</th>
              <th scope="col">code</th>
            </tr>
          </thead>
          <tbody>
            {info.preview.map((row, i) => (
              <tr key={i}>
                <td>{i + 1}</td>
                <td>{row.label === 1 ? 'vulnerable' : 'safe'}</td>
                <td>{row.cwe ?? '—'}</td>
                <td>{row.split ?? '—'}</td>
                <td>
                  {/* Code is untrusted text: rendered as a text node, never as HTML. */}
                  <pre className="code">{row.code}</pre>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function binLabel(bin: { from: number; to: number }): string {
  return Number.isFinite(bin.to) ? `${bin.from}–${bin.to}` : `> ${bin.from}`;
}

function Quality({ quality }: { quality: QualityReport }) {
  const lengths = quality.lengths;
  const bins = lengths?.histogram.map((b) => ({ tokens: binLabel(b), functions: b.count })) ?? [];
  const contextBin = lengths?.histogram.find(
    (b) => b.from < lengths.contextLength && lengths.contextLength <= b.to,
  );
  return (
    <section aria-labelledby="quality-title" data-testid="quality">
      <h3 id="quality-title">Quality report</h3>
      {quality.warnings.length > 0 && (
        <ul className="quality-warnings">
          {quality.warnings.map((w) => (
            <li key={w.code + w.message} className={w.severity}>
              <strong>{w.severity}:</strong> {w.message}
            </li>
          ))}
        </ul>
      )}
      <div className="quality-grid">
        <div>
          <h4>Class balance</h4>
          <div className="balance" aria-hidden="true">
            <span className="vulnerable" style={{ width: formatPercent(quality.positiveShare) }} />
          </div>
          <p>
            {quality.positives} vulnerable, {quality.negatives} safe ({formatPercent(quality.positiveShare)}{' '}
            vulnerable) of {quality.total}.
          </p>
          <h4>Duplicates and conflicts</h4>
          <ul>
            <li>
              Exact duplicates: {quality.exactDuplicates.groups} groups, {quality.exactDuplicates.extraCopies}{' '}
              extra copies.
            </li>
            <li>
              Same code after dropping comments and whitespace: {quality.normalizedDuplicates.groups} groups,{' '}
              {quality.normalizedDuplicates.extraCopies} extra copies.
            </li>
            <li>
              Conflicting labels (same code, both labels): {quality.conflictingLabels.groups} groups,{' '}
              {quality.conflictingLabels.records} records.
            </li>
            <li>
              In more than one split (leakage): {quality.crossSplitDuplicates.groups} groups,{' '}
              {quality.crossSplitDuplicates.records} records.
            </li>
          </ul>
        </div>
        {lengths && (
          <div>
            <h4>Function length in tokens</h4>
            <BarsChart
              testId="length-histogram"
              ariaLabel="Function length histogram"
              data={bins}
              xKey="tokens"
              xLabel="tokens"
              yLabel="functions"
              bars={[{ key: 'functions', name: 'functions', color: SERIES_COLORS[0] }]}
              reference={
                contextBin
                  ? { x: binLabel(contextBin), label: `context ${lengths.contextLength}` }
                  : undefined
              }
            />
            <p>
              Mean {Math.round(lengths.mean)}, median {lengths.median}, 90% below {lengths.p90}, longest{' '}
              {lengths.max} tokens. <strong>{lengths.truncatedCount}</strong> functions (
              {formatPercent(lengths.truncatedShare)}) are longer than the context of {lengths.contextLength}{' '}
              tokens and will be truncated.
            </p>
          </div>
        )}
        <div>
          <h4>Per CWE</h4>
          <div className="table-scroll short">
            <table>
              <thead>
                <tr>
                  <th scope="col">CWE</th>
                  <th scope="col">vulnerable</th>
                  <th scope="col">safe</th>
                </tr>
              </thead>
              <tbody>
                {quality.perCwe.slice(0, 40).map((c) => (
                  <tr key={c.cwe}>
                    <th scope="row">{c.cwe}</th>
                    <td>{c.positives}</td>
                    <td>{c.negatives}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </div>
      </div>
    </section>
  );
}

function Issues({ info }: { info: DatasetInfo }) {
  const counts = Object.entries(info.issueCounts).filter(([, n]) => n);
  if (!info.parseFailures.length && !counts.length) return null;
  return (
    <section aria-labelledby="issues-title" data-testid="import-issues">
      <h3 id="issues-title">Import problems</h3>
      {info.parseFailures.length > 0 && (
        <div className="error-box" role="alert" data-testid="parse-failures">
          <strong>
            {info.parseFailures.length} file{info.parseFailures.length === 1 ? '' : 's'} could not be read
          </strong>{' '}
          — the other files were imported.
          <ul>
            {info.parseFailures.map((f) => (
              <li key={f.file}>
                <code>{f.file}</code>: {f.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      {counts.length > 0 && (
        <p>Skipped or fixed rows: {counts.map(([kind, n]) => `${n} ${kind}`).join(', ')}.</p>
      )}
      {info.issues.length > 0 && (
        <details open={info.issues.length <= 10}>
          <summary>Rows with problems ({info.issues.length} listed)</summary>
          <ul className="issues">
            {info.issues.slice(0, 200).map((issue, i) => (
              <li key={i}>
                {issue.file ? <code>{issue.file}</code> : null}
                {issue.line !== undefined ? ` line ${issue.line}` : ''} — {issue.kind}: {issue.message}
              </li>
            ))}
          </ul>
        </details>
      )}
    </section>
  );
}

function Splits({ info }: { info: DatasetInfo }) {
  return (
    <section aria-labelledby="splits-title">
      <h3 id="splits-title">Splits</h3>
      <table data-testid="splits">
        <thead>
          <tr>
            <th scope="col">split</th>
            <th scope="col">functions</th>
            <th scope="col">vulnerable</th>
            <th scope="col">safe</th>
            <th scope="col">share vulnerable</th>
          </tr>
        </thead>
        <tbody>
          {info.splits.map((s) => (
            <tr key={s.split}>
              <th scope="row">{s.split}</th>
              <td>{s.size}</td>
              <td>{s.positives}</td>
              <td>{s.negatives}</td>
              <td>{formatPercent(s.positiveShare)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted small">
        Splits come from the dataset’s split column when it has one; otherwise a seeded 80/10/10 split,
        stratified by label (the same proportion of vulnerable functions in each).
      </p>
    </section>
  );
}

export function DataPanel() {
  const data = useLab((s) => s.data);
  const importData = useLab((s) => s.importData);
  const loading = data.status === 'loading';
  const info = data.info;
  return (
    <div className="data-panel">
      <div className="row">
        <DropZone disabled={loading} />
        <div>
          <button
            type="button"
            disabled={loading}
            onClick={() => void importData({ kind: 'demo' }, 'demo dataset')}
          >
            Use the demo dataset
          </button>
          <p className="muted small">
            520 labelled Java methods (SQL injection, path traversal, …) made for the lab.
          </p>
        </div>
      </div>
      {loading && (
        <p role="status" data-testid="data-loading">
          Reading {data.loading}…{' '}
          {data.progress &&
            `${data.progress.stage === 'import' ? 'importing' : 'tokenizing'} ${data.progress.done}${data.progress.total ? ` of ${data.progress.total}` : ''}`}
          {data.progress?.total ? (
            <progress max={data.progress.total} value={data.progress.done} aria-label="data progress" />
          ) : null}
        </p>
      )}
      {data.error && (
        <ErrorBox error={data.error} testId="data-error">
          <button type="button" onClick={() => void importData({ kind: 'demo' }, 'demo dataset')}>
            Use the demo dataset instead
          </button>
        </ErrorBox>
      )}
      {info && (
        <>
          {data.error && <p className="muted">The dataset below is still the one in use.</p>}
          <p data-testid="data-summary" role="status">
            <strong>{data.name}</strong> ({info.format}): {info.recordCount} functions imported.
          </p>
          <Issues info={info} />
          <Mapping info={info} />
          <Preview info={info} />
          <Quality quality={info.quality} />
          <Splits info={info} />
        </>
      )}
    </div>
  );
}
