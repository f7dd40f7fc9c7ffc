import { useEffect, useState } from 'react';
import { zipSync } from 'fflate';
import type { OnnxExport, SerializedError } from '../../worker/protocol.ts';
import {
  onnxScanClient,
  type ExecutionPreference,
  type OnnxDetectorSummary,
  type OnnxScanProgress,
} from '../../worker/onnx-scan-client.ts';
import { ErrorBox } from '../errors.tsx';
import { asSerialized, engineClient } from '../store.ts';

const formatMb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 1)} MB`;

/** Where the probabilities run, in words. */
export function describeProvider(d: OnnxDetectorSummary): string {
  return d.executionProvider === 'webgpu'
    ? 'ONNX Runtime on WebGPU (the GPU; operators WebGPU lacks run on WASM)'
    : 'ONNX Runtime on WASM (the CPU)';
}

/** Picks and loads an exported .onnx detector into the ONNX scan worker. */
export function OnnxDetectorPicker({
  detector,
  onLoaded,
}: {
  detector: OnnxDetectorSummary | undefined;
  onLoaded: (detector: OnnxDetectorSummary | undefined) => void;
}) {
  const [files, setFiles] = useState<File[]>([]);
  const [preference, setPreference] = useState<ExecutionPreference>('auto');
  const [progress, setProgress] = useState<OnnxScanProgress>();
  const [error, setError] = useState<SerializedError>();
  const [busy, setBusy] = useState(false);

  const load = async () => {
    setBusy(true);
    setError(undefined);
    const client = onnxScanClient();
    const off = client.onProgress(setProgress);
    try {
      onLoaded(await client.request({ type: 'load', files, preference }));
    } catch (e) {
      setError(asSerialized(e));
      onLoaded(undefined);
    } finally {
      off();
      setProgress(undefined);
      setBusy(false);
    }
  };

  return (
    <div className="onnx-detector">
      <p className="muted small">
        An exported detector (npm run vulnlab -- export-onnx, or Export ONNX in Results): pick its .onnx with
        tokenizer.json (and the .onnx.data file if there is one), or the zip of its folder. It runs in this
        tab with ONNX Runtime Web; nothing is uploaded.
      </p>
      <div className="row">
        <label className="file-button">
          Choose files…
          <input
            type="file"
            multiple
            accept=".onnx,.data,.json,.zip"
            data-testid="onnx-files"
            onChange={(e) => setFiles([...(e.target.files ?? [])])}
          />
        </label>
        <span className="muted small">
          {files.length ? files.map((f) => f.name).join(', ') : 'no files chosen'}
        </span>
        <label>
          Run on{' '}
          <select value={preference} onChange={(e) => setPreference(e.target.value as ExecutionPreference)}>
            <option value="auto">WebGPU if available, else WASM</option>
            <option value="wasm">WASM (CPU) only</option>
          </select>
        </label>
        <button type="button" disabled={busy || files.length === 0} onClick={() => void load()}>
          {busy ? 'Loading…' : 'Load detector'}
        </button>
      </div>
      {progress && (
        <div className="load-progress" data-testid="onnx-progress">
          <div className="stage">
            <span>{progress.label}</span>
            <progress
              max={progress.total || 1}
              value={progress.stage === 'session' && progress.done === 0 ? undefined : progress.done}
            />
            <span className="muted small">
              {progress.stage === 'read' ? `${formatMb(progress.done)} / ${formatMb(progress.total)}` : ''}
            </span>
          </div>
        </div>
      )}
      {error && <ErrorBox error={error} testId="onnx-error" />}
      {detector && (
        <div data-testid="onnx-detector-status">
          <p>
            Loaded <strong>{detector.name}</strong>
            {detector.baseModel && ` (${detector.baseModel}, ${detector.weightFormat} weights)`}
            {detector.threshold !== null &&
              `, threshold ${detector.threshold.toFixed(3)} chosen on validation`}
            {` in ${(detector.loadMs / 1000).toFixed(1)} s.`} Running on:{' '}
            <strong data-testid="onnx-provider">{describeProvider(detector)}</strong>.
          </p>
          {detector.fallbackReason && (
            <p className="notice warning" role="status" data-testid="onnx-fallback">
              Falling back to WASM: {detector.fallbackReason}. Scanning works on the CPU, more slowly than on
              a GPU.
            </p>
          )}
          {detector.foreign && (
            <p className="muted small">
              This model was not exported by VulnLab: it has a detector&apos;s inputs and outputs, so it is
              scanned with default tokenization (first 1023 tokens, no normalization) and no threshold.
            </p>
          )}
        </div>
      )}
    </div>
  );
}

const ONNX_FORMATS = [
  { value: 'f32', label: 'f32 (exact)' },
  { value: 'f16', label: 'f16 (half the size)' },
  { value: 'int8', label: 'int8 (DequantizeLinear, block 32)' },
  { value: 'int4', label: 'int4 (MatMulNBits, block 32)' },
] as const;

/** Exports the latest run as an ONNX detector (LoRA merged), with its tokenizer and description. */
export function OnnxExportButton() {
  const [format, setFormat] = useState<(typeof ONNX_FORMATS)[number]['value']>('f32');
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
  const exportOnnx = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const exported: OnnxExport = await engineClient().request({ type: 'exportOnnx', format });
      setFiles(
        exported.files.map((f) => ({ name: f.name, size: f.blob.size, url: URL.createObjectURL(f.blob) })),
      );
      const total = exported.files.reduce((sum, f) => sum + f.blob.size, 0);
      if (total < 2 ** 30) {
        const entries = await Promise.all(
          exported.files.map(async (f) => [f.name, new Uint8Array(await f.blob.arrayBuffer())] as const),
        );
        const zip = zipSync(Object.fromEntries(entries), { level: 0 });
        setZipUrl(URL.createObjectURL(new Blob([zip as BlobPart], { type: 'application/zip' })));
      } else setZipUrl(undefined);
    } catch (e) {
      setError(asSerialized(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="onnx-export">
      <label>
        ONNX weights{' '}
        <select value={format} onChange={(e) => setFormat(e.target.value as typeof format)}>
          {ONNX_FORMATS.map((f) => (
            <option key={f.value} value={f.value}>
              {f.label}
            </option>
          ))}
        </select>
      </label>{' '}
      <button type="button" disabled={busy} onClick={() => void exportOnnx()}>
        {busy ? 'Exporting…' : 'Export ONNX'}
      </button>
      <span className="muted small">
        {' '}
        the latest run as one model (LoRA merged into the weights) for ONNX Runtime in CI, IDEs or services,
        with tokenizer.json and detector.json (inputs, outputs, threshold).
      </span>
      {files && (
        <ul data-testid="onnx-files-exported">
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
              <a href={zipUrl} download={`vulnlab-detector-${format}.zip`}>
                all as vulnlab-detector-{format}.zip
              </a>
            </li>
          )}
        </ul>
      )}
      {error && <ErrorBox error={error} testId="onnx-export-error" />}
    </div>
  );
}
