import { useState, type DragEvent } from 'react';
import type { ExplainMethod, ExplainResult, ScanResult, SerializedError } from '../../worker/protocol.ts';
import { onnxScanClient, type OnnxDetectorSummary } from '../../worker/onnx-scan-client.ts';
import { ErrorBox } from '../errors.tsx';
import { asSerialized, engineClient, useLab } from '../store.ts';
import { OnnxDetectorPicker } from './OnnxDetector.tsx';
import { AdapterImport } from './AdapterImport.tsx';
import { Heatmap, METHOD_NAMES } from './Heatmap.tsx';

/** Methods explained after a scan (the riskiest): attributions cost a backward pass each. */
const EXPLAINED = 5;

const EXAMPLE = `public class Accounts {
    public ResultSet find(Connection conn, String name) throws SQLException {
        Statement st = conn.createStatement();
        return st.executeQuery("SELECT * FROM accounts WHERE name = '" + name + "'");
    }

    public ResultSet findSafely(Connection conn, String name) throws SQLException {
        PreparedStatement ps = conn.prepareStatement("SELECT * FROM accounts WHERE name = ?");
        ps.setString(1, name);
        return ps.executeQuery();
    }
}
`;

export function ScanPanel() {
  const live = useLab((s) => s.live);
  const setPanel = useLab((s) => s.setPanel);
  const importedAdapter = useLab((s) => s.importedAdapter);
  const [code, setCode] = useState('');
  const [result, setResult] = useState<ScanResult & { onnx?: boolean }>();
  const [source, setSource] = useState<'run' | 'onnx'>('run');
  const [onnxDetector, setOnnxDetector] = useState<OnnxDetectorSummary>();
  const [error, setError] = useState<SerializedError>();
  const [busy, setBusy] = useState(false);
  const [explainMethod, setExplainMethod] = useState<ExplainMethod>('grad');
  const [explained, setExplained] = useState<Partial<Record<ExplainMethod, ExplainResult>>>({});
  const [explaining, setExplaining] = useState<ExplainMethod>();
  const [explainError, setExplainError] = useState<SerializedError>();
  const trained =
    !!live && (live.phase === 'finished' || live.phase === 'stopped' || live.phase === 'paused');

  /** Attributions of the scan's riskiest methods by `method`, from the worker (kept per method). */
  const explain = async (method: ExplainMethod, scanned: ScanResult['methods']) => {
    setExplaining(method);
    setExplainError(undefined);
    try {
      const methods = [...scanned]
        .sort((a, b) => b.probability - a.probability)
        .slice(0, EXPLAINED)
        .map(({ name, line, code }) => ({ name, line, code }));
      const got = await engineClient().request({ type: 'explain', methods, method });
      setExplained((previous) => ({ ...previous, [method]: got }));
    } catch (e) {
      setExplainError(asSerialized(e));
    } finally {
      setExplaining(undefined);
    }
  };
  const chooseExplainMethod = (method: ExplainMethod) => {
    setExplainMethod(method);
    if (result && !result.onnx && !explained[method] && !explaining) void explain(method, result.methods);
  };

  const scan = async () => {
    setBusy(true);
    setError(undefined);
    setExplained({});
    setExplainError(undefined);
    let scanned: ScanResult | undefined;
    try {
      if (source === 'onnx') {
        const scanned = await onnxScanClient().request({ type: 'scan', code });
        setResult({
          ...scanned,
          onnx: true,
          note: `${scanned.methods.length} method${scanned.methods.length === 1 ? '' : 's'} in ${scanned.ms.toFixed(0)} ms on ${scanned.executionProvider === 'webgpu' ? 'WebGPU' : 'WASM'}.`,
        });
      } else {
        scanned = await engineClient().request({ type: 'scan', code });
        setResult(scanned);
      }
    } catch (e) {
      setError(asSerialized(e));
      setResult(undefined);
    } finally {
      setBusy(false);
    }
    if (scanned && scanned.methods.length > 0) await explain(explainMethod, scanned.methods);
  };
  const onDrop = async (e: DragEvent<HTMLTextAreaElement>) => {
    const files = [...e.dataTransfer.files].filter((f) => f.name.endsWith('.java'));
    if (!files.length) return;
    e.preventDefault();
    const texts = await Promise.all(files.map((f) => f.text()));
    setCode(texts.join('\n\n'));
  };
  const methods = result ? [...result.methods].sort((a, b) => b.probability - a.probability) : [];

  return (
    <div className="scan-panel">
      <fieldset className="row inline">
        <legend>Detector</legend>
        <label>
          <input
            type="radio"
            name="scan-detector"
            checked={source === 'run'}
            onChange={() => setSource('run')}
          />{' '}
          current run (the lab&apos;s WebGPU engine)
        </label>
        <label>
          <input
            type="radio"
            name="scan-detector"
            checked={source === 'onnx'}
            onChange={() => setSource('onnx')}
          />{' '}
          ONNX file (ONNX Runtime Web: WebGPU, or WASM without it)
        </label>
      </fieldset>
      {source === 'onnx' && <OnnxDetectorPicker detector={onnxDetector} onLoaded={setOnnxDetector} />}
      {source === 'run' && <AdapterImport />}
      {source === 'run' && !trained && !importedAdapter && (
        <p className="muted">
          Scanning uses the model of the latest run in this tab, or an adapter you import above.{' '}
          <button type="button" className="link" onClick={() => setPanel('train')}>
            Train one first
          </button>{' '}
          (the classroom demo reaches validation ROC AUC 0.9 in about 10 minutes on a software WebGPU
          adapter).
        </p>
      )}
      <label htmlFor="scan-code">Java code (paste, or drop .java files here)</label>
      <textarea
        id="scan-code"
        value={code}
        rows={14}
        spellCheck={false}
        placeholder={EXAMPLE}
        onChange={(e) => setCode(e.target.value)}
        onDragOver={(e) => e.preventDefault()}
        onDrop={(e) => void onDrop(e)}
      />
      <div className="row">
        <button
          type="button"
          className="primary"
          disabled={busy || !code.trim() || (source === 'onnx' && !onnxDetector)}
          onClick={() => void scan()}
        >
          {busy ? 'Scanning…' : 'Scan'}
        </button>
        <button type="button" onClick={() => setCode(EXAMPLE)}>
          Paste an example
        </button>
      </div>
      {error && <ErrorBox error={error} testId="scan-error" />}
      {result && result.parseFailures.length > 0 && (
        <div className="error-box" role="alert">
          Some code could not be parsed as Java:{' '}
          {result.parseFailures.map((f) => `${f.file}: ${f.message}`).join('; ')}
        </div>
      )}
      {result && (
        <table data-testid="scan-results">
          <caption className="muted small">
            Riskiest first. p = the model’s probability that the method is vulnerable.
            {result.threshold != null &&
              ` Flagged: p ≥ ${result.threshold.toFixed(3)} (threshold chosen on validation).`}
            {result.note && ` ${result.note}`}
          </caption>
          <thead>
            <tr>
              <th scope="col">Method</th>
              <th scope="col">Line</th>
              <th scope="col">p(vulnerable)</th>
              <th scope="col">Code</th>
            </tr>
          </thead>
          <tbody>
            {methods.map((m) => (
              <tr key={`${m.name}:${m.line}`}>
                <th scope="row">{m.name}</th>
                <td>{m.line}</td>
                <td>
                  <meter min={0} max={1} value={m.probability} aria-label={`probability for ${m.name}`} />{' '}
                  {m.probability.toFixed(3)}
                  {result.threshold != null && m.probability >= result.threshold && <strong> flagged</strong>}
                </td>
                <td>
                  <details>
                    <summary>show</summary>
                    <pre className="code">{m.code}</pre>
                  </details>
                </td>
              </tr>
            ))}
            {methods.length === 0 && (
              <tr>
                <td colSpan={4}>No methods found in this code.</td>
              </tr>
            )}
          </tbody>
        </table>
      )}
      {result && !result.onnx && result.methods.length > 0 && (
        <section className="explain" data-testid="scan-explain" aria-busy={!!explaining}>
          <h3>Which lines drove the score</h3>
          <fieldset className="row inline">
            <legend>Attribution</legend>
            {(['grad', 'ig'] as const).map((m) => (
              <label key={m}>
                <input
                  type="radio"
                  name="explain-method"
                  checked={explainMethod === m}
                  disabled={!!explaining}
                  onChange={() => chooseExplainMethod(m)}
                />{' '}
                {METHOD_NAMES[m]}
              </label>
            ))}
          </fieldset>
          <p className="muted small">
            Each token&apos;s share in the log-odds of “vulnerable”: red pushes toward vulnerable
            {explainMethod === 'ig'
              ? ', blue away from it (integrated gradients are signed)'
              : ' (gradient × input is unsigned)'}
            ; the gutter sums each line. Riskiest {Math.min(EXPLAINED, result.methods.length)} method
            {Math.min(EXPLAINED, result.methods.length) === 1 ? '' : 's'}.
          </p>
          {explaining && <p data-testid="explain-busy">Computing {METHOD_NAMES[explaining]}…</p>}
          {explainError && <ErrorBox error={explainError} testId="explain-error" />}
          {explained[explainMethod] && (
            <>
              <p className="muted small">
                {METHOD_NAMES[explainMethod]}
                {explained[explainMethod].steps !== undefined &&
                  ` (${explained[explainMethod].steps} steps)`}{' '}
                in {(explained[explainMethod].ms / 1000).toFixed(1)} s.
              </p>
              {explained[explainMethod].methods.map((m) => (
                <Heatmap key={`${m.name}:${m.line}`} method={m} kind={explainMethod} />
              ))}
            </>
          )}
        </section>
      )}
    </div>
  );
}
