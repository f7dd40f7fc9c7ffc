import { useEffect, useRef, useState, type DragEvent } from 'react';
import type { SerializedError } from '../../worker/protocol.ts';
import { ErrorBox } from '../errors.tsx';
import { formatMetric } from '../format.ts';
import { useLab } from '../store.ts';

/**
 * Scan with a PEFT adapter exported earlier (by the lab or `vulnlab train`), not only the latest run:
 * the folder's adapter_config.json + adapter_model.safetensors, and vulnlab_detector.json for the
 * threshold when it is there. The adapter runs on the loaded base model.
 */
export function AdapterImport() {
  const imported = useLab((s) => s.importedAdapter);
  const model = useLab((s) => s.model);
  const importAdapter = useLab((s) => s.importAdapter);
  const clearAdapter = useLab((s) => s.clearAdapter);
  const setPanel = useLab((s) => s.setPanel);
  const [error, setError] = useState<SerializedError>();
  const [busy, setBusy] = useState(false);
  const [over, setOver] = useState(false);
  const folderRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (folderRef.current) folderRef.current.webkitdirectory = true;
  }, []);

  const take = async (files: File[]) => {
    if (!files.length) return;
    setBusy(true);
    setError(undefined);
    setError(await importAdapter(files));
    setBusy(false);
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    void take([...e.dataTransfer.files]);
  };
  const ready = model.status === 'ready';

  return (
    <section
      className={`adapter-import drop-zone${over ? ' over' : ''}`}
      aria-labelledby="adapter-import-title"
      data-testid="adapter-import"
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={onDrop}
    >
      <h3 id="adapter-import-title">Scan with an exported adapter</h3>
      {imported ? (
        <p role="status" data-testid="adapter-imported">
          Scans use the imported adapter{imported.name && <strong> {imported.name}</strong>} on{' '}
          {imported.modelName} (LoRA r {imported.r}, α {imported.alpha}, {imported.tensors} tensors, packs of{' '}
          {imported.packLength} tokens
          {imported.validationRocAuc !== null &&
            `, validation ROC AUC ${formatMetric(imported.validationRocAuc)} in its run`}
          ).{' '}
          {imported.threshold !== null
            ? `Methods with p ≥ ${imported.threshold.toFixed(3)} are flagged (its run’s threshold).`
            : 'It came without vulnlab_detector.json, so nothing is flagged: read the probabilities.'}{' '}
          <button type="button" onClick={() => void clearAdapter()}>
            Use the latest run instead
          </button>
        </p>
      ) : (
        <p className="muted small">
          Drop an adapter folder here (adapter_config.json + adapter_model.safetensors, and
          vulnlab_detector.json for its threshold), as exported in Results or by <code>vulnlab train</code>.
          It runs on the loaded base model; nothing leaves this machine.
        </p>
      )}
      {imported?.warning && (
        <p className="warning" role="alert">
          {imported.warning}
        </p>
      )}
      {!ready && (
        <p className="muted small">
          An adapter needs its base model:{' '}
          <button type="button" className="link" onClick={() => setPanel('model')}>
            load it in the Model panel
          </button>{' '}
          first.
        </p>
      )}
      <div className="row">
        <label className="file-button">
          Pick an adapter folder
          <input
            ref={folderRef}
            type="file"
            multiple
            disabled={busy || !ready}
            data-testid="adapter-folder"
            onChange={(e) => {
              void take([...(e.target.files ?? [])]);
              e.target.value = '';
            }}
          />
        </label>
        <label className="file-button">
          Pick adapter files
          <input
            type="file"
            multiple
            accept=".json,.safetensors"
            disabled={busy || !ready}
            data-testid="adapter-files-input"
            onChange={(e) => {
              void take([...(e.target.files ?? [])]);
              e.target.value = '';
            }}
          />
        </label>
        {busy && <span role="status">Putting the adapter on the GPU…</span>}
      </div>
      {error && <ErrorBox error={error} testId="adapter-import-error" />}
    </section>
  );
}
