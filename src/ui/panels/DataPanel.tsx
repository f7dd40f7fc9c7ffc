import { useState, type DragEvent } from 'react';
import type { FieldMapping } from '../../data/fields.ts';
import type { QualityReport } from '../../data/quality.ts';
import type { GroupKey } from '../../data/splits.ts';
import type { DatasetInfo, SplitOptions } from '../../worker/protocol.ts';
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
  const columns = info.columns;
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
      {columns && columns.length > 0 && (
        <p className="small" data-testid="columns">
          Columns in the file:{' '}
          {columns.map((c, i) => (
            <span key={c}>
              {i > 0 && ', '}
              <code>{c}</code>
            </span>
          ))}
        </p>
      )}
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

const STRATEGIES: { value: SplitOptions['strategy']; label: string }[] = [
  { value: 'auto', label: 'as the command line: the split column, else stratified by label' },
  { value: 'field', label: 'the split column (rows without one: stratified)' },
  { value: 'stratified', label: 'stratified by label, at random' },
  { value: 'grouped', label: 'grouped: a project, commit or file in one split only' },
];
const GROUP_KEYS: GroupKey[] = ['project', 'commit', 'file'];

function Splits({ info }: { info: DatasetInfo }) {
  const splitData = useLab((s) => s.splitData);
  const runSeed = useLab((s) => s.draft.seed);
  const requested = info.split.requested;
  const [strategy, setStrategy] = useState(requested.strategy);
  const [percent, setPercent] = useState(() => {
    const f = requested.fractions ?? { train: 0.8, validation: 0.1, test: 0.1 };
    return { train: f.train * 100, validation: f.validation * 100, test: f.test * 100 };
  });
  const [seed, setSeed] = useState(String(requested.seed ?? runSeed));
  const [groupBy, setGroupBy] = useState<GroupKey>(requested.groupBy ?? 'commit');
  const [busy, setBusy] = useState(false);
  const total = percent.train + percent.validation + percent.test;
  const seedValue = Number(seed);
  const seedOk = Number.isInteger(seedValue) && seedValue >= 0 && seedValue < 2 ** 32;
  const defaultFractions = percent.train === 80 && percent.validation === 10 && percent.test === 10;
  const valid = seedOk && total > 0 && Object.values(percent).every((p) => p >= 0);
  const apply = async () => {
    setBusy(true);
    const options: SplitOptions =
      strategy === 'auto' && defaultFractions
        ? { strategy: 'auto', seed: seedValue }
        : {
            strategy,
            seed: seedValue,
            fractions: {
              train: percent.train / total,
              validation: percent.validation / total,
              test: percent.test / total,
            },
            ...(strategy === 'grouped' ? { groupBy } : {}),
          };
    await splitData(options);
    setBusy(false);
  };
  const grouped = info.splits.some((s) => s.groups !== undefined);
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
            {grouped && <th scope="col">groups</th>}
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
              {grouped && <td>{s.groups ?? '—'}</td>}
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted small" data-testid="split-explanation">
        {info.split.fixed
          ? `Split ${info.split.strategy}${info.split.groupBy ? ` by ${info.split.groupBy}` : ''} with seed ${info.split.seed}, chosen here: every run uses exactly these splits.`
          : info.split.strategy === 'field'
            ? 'From the dataset’s split column, as the command line does.'
            : `No split column: a seeded split, stratified by label (the same share of vulnerable functions in each), shown with seed ${info.split.seed}. A run splits with its own seed, as the command line does.`}
        {info.split.notes.map((n) => ` ${n}`).join('')}
      </p>
      <form
        className="split-options"
        aria-label="Split options"
        onSubmit={(e) => {
          e.preventDefault();
          if (valid && !busy) void apply();
        }}
      >
        <label>
          Split{' '}
          <select
            aria-label="Split strategy"
            value={strategy}
            onChange={(e) => setStrategy(e.target.value as SplitOptions['strategy'])}
          >
            {STRATEGIES.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </label>
        {strategy === 'grouped' && (
          <label>
            Group by{' '}
            <select
              aria-label="Group by"
              value={groupBy}
              onChange={(e) => setGroupBy(e.target.value as GroupKey)}
            >
              {GROUP_KEYS.map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
            </select>
          </label>
        )}
        {strategy !== 'field' &&
          (['train', 'validation', 'test'] as const).map((split) => (
            <label key={split}>
              {split} %{' '}
              <input
                type="number"
                aria-label={`${split} share (%)`}
                min={0}
                max={100}
                step={1}
                value={percent[split]}
                onChange={(e) => setPercent({ ...percent, [split]: Number(e.target.value) })}
                style={{ width: '4.5em' }}
              />
            </label>
          ))}
        <label>
          Seed{' '}
          <input
            type="number"
            aria-label="Split seed"
            min={0}
            step={1}
            value={seed}
            aria-invalid={!seedOk}
            onChange={(e) => setSeed(e.target.value)}
            style={{ width: '7em' }}
          />
        </label>
        <button type="submit" disabled={!valid || busy}>
          {busy ? 'Splitting…' : 'Apply the split'}
        </button>
        {!valid && (
          <span className="warning" role="alert">
            {seedOk
              ? 'The shares must be positive numbers.'
              : 'The seed must be a whole number from 0 to 2³²−1.'}
          </span>
        )}
      </form>
      <p className="muted small">
        Truncation in the quality report is counted against {info.split.contextLength} tokens (the Train
        panel’s pack length, within the model’s context).
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
          <Splits key={`${data.name}:${info.recordCount}:${info.format}`} info={info} />
        </>
      )}
    </div>
  );
}
