import { useState, type DragEvent } from 'react';
import type { ScanResult, SerializedError } from '../../worker/protocol.ts';
import { onnxScanClient, type OnnxDetectorSummary } from '../../worker/onnx-scan-client.ts';
import { ErrorBox } from '../errors.tsx';
import { asSerialized, engineClient, useLab } from '../store.ts';
import { OnnxDetectorPicker } from './OnnxDetector.tsx';
import { AdapterImport } from './AdapterImport.tsx';

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
  const [result, setResult] = useState<ScanResult & { threshold?: number | null; note?: string }>();
  const [source, setSource] = useState<'run' | 'onnx'>('run');
  const [onnxDetector, setOnnxDetector] = useState<OnnxDetectorSummary>();
  const [error, setError] = useState<SerializedError>();
  const [busy, setBusy] = useState(false);
  const trained =
    !!live && (live.phase === 'finished' || live.phase === 'stopped' || live.phase === 'paused');

  const scan = async () => {
    setBusy(true);
    setError(undefined);
    try {
      if (source === 'onnx') {
        const scanned = await onnxScanClient().request({ type: 'scan', code });
        setResult({
          ...scanned,
          note: `${scanned.methods.length} method${scanned.methods.length === 1 ? '' : 's'} in ${scanned.ms.toFixed(0)} ms on ${scanned.executionProvider === 'webgpu' ? 'WebGPU' : 'WASM'}.`,
        });
      } else setResult(await engineClient().request({ type: 'scan', code }));
    } catch (e) {
      setError(asSerialized(e));
      setResult(undefined);
    } finally {
      setBusy(false);
    }
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
          (the classroom demo takes about 10 minutes on a software WebGPU adapter).
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
    </div>
  );
}
