import { useEffect, useRef, useState } from 'react';
import {
  checkFit,
  PRESETS,
  type AdapterBudget,
  type ModelPreset,
  type TrainingShape,
} from '../../io/presets.ts';
import { mapLoraTargets, type RunConfig, type WeightFormat } from '../../train/config.ts';
import { ErrorBox } from '../errors.tsx';
import { formatBytes, formatCount, formatDuration, formatPercent } from '../format.ts';
import { targetsOffered } from '../loraTargets.ts';
import { architectureSummary, factsOf } from '../modelFacts.ts';
import type { ModelInfo } from '../../worker/protocol.ts';
import { useLab } from '../store.ts';
import { CachedModels } from './CachedModels.tsx';

const FORMATS: WeightFormat[] = ['f32', 'f16', 'q8_0', 'q4_0'];
const GiB = 1024 ** 3;

function Progress() {
  const model = useLab((s) => s.model);
  const p = model.progress;
  if (!p || (model.status !== 'loading' && p.stage !== 'done')) return null;
  const bar = (label: string, value: number, total: number) => (
    <div className="stage">
      <span>{label}</span>
      <progress max={Math.max(1, total)} value={Math.min(value, total)} aria-label={label} />
      <span>
        {formatBytes(value)} of {formatBytes(total)}
      </span>
    </div>
  );
  return (
    <div className="load-progress" data-testid="model-progress">
      <div className="stage total">
        <span>{p.stage === 'done' ? 'Loaded' : `Loading (${p.stage})`}</span>
        <progress max={1} value={p.fraction} aria-label="model load progress" />
        <span>
          {formatPercent(p.fraction, 0)} · {formatBytes(p.downloadedBytes)} of {formatBytes(p.totalBytes)}
          {p.cachedBytes > 0 ? ` (${formatBytes(p.cachedBytes)} from the cache)` : ''}
          {p.etaSeconds !== undefined && p.stage !== 'done'
            ? ` · about ${formatDuration(p.etaSeconds)} left`
            : ''}
        </span>
      </div>
      <details>
        <summary>Per stage</summary>
        {bar('download / read', p.downloadedBytes, p.totalBytes)}
        {bar('convert', p.convertedBytes, p.totalBytes)}
        {bar('upload', p.uploadedBytes, p.totalBytes)}
        <p className="muted">
          Tensors {p.tensorsDone} of {p.tensorsTotal}
          {p.tensor ? ` · now ${p.tensor}` : ''} · {formatDuration(p.elapsedSeconds)} so far
        </p>
      </details>
    </div>
  );
}

/**
 * The memory shape of the Train settings for one preset: its rank, packs and recomputation, and its
 * LoRA targets carried to the preset's family (as loading it would carry them).
 */
export function presetTrainingShape(draft: RunConfig, preset: ModelPreset): TrainingShape {
  return {
    loraRank: draft.lora.r,
    packLength: draft.batching.packLength,
    packsPerStep: draft.batching.packsPerStep,
    recompute: draft.recompute,
    loraTargets: mapLoraTargets(draft.lora.targets, targetsOffered(preset.config)).targets,
  };
}

/** One known model: its family and architecture, parameters, memory per format, the verdict, Load. */
export function PresetRow({
  preset,
  format,
  budget,
  shape,
  onLoad,
  busy,
}: {
  preset: ModelPreset;
  format: WeightFormat;
  budget: AdapterBudget;
  shape: TrainingShape;
  onLoad: () => void;
  busy: boolean;
}) {
  const facts = factsOf(preset.config);
  const fits = Object.fromEntries(FORMATS.map((f) => [f, checkFit(preset, f, budget, shape)]));
  const chosen = fits[format];
  const plan = chosen.plan;
  const verdictId = `verdict-${preset.id.replace(/[^A-Za-z0-9_-]/g, '-')}`;
  return (
    <tr data-preset={preset.id}>
      <th scope="row">
        {preset.label}
        <div className="muted small">{preset.id}</div>
        {preset.note && <div className="muted small">{preset.note}</div>}
      </th>
      <td className="family">{facts?.familyLabel ?? '—'}</td>
      <td className="architecture small">{facts ? architectureSummary(facts) : '—'}</td>
      <td>{facts ? formatCount(facts.parameters) : '—'}</td>
      <td>{preset.gated ? 'yes (token)' : 'no'}</td>
      {FORMATS.map((f) => (
        <td key={f} className={fits[f].fits ? 'ok' : 'bad'}>
          {formatBytes(fits[f].plan.total)} {fits[f].fits ? '✓' : '✗'}
        </td>
      ))}
      <td className="verdict" id={verdictId}>
        {chosen.fits ? (
          <span className="ok">fits in {format}</span>
        ) : (
          <span className="bad">
            too big in {format}: {chosen.suggestions.join('; ')}
          </span>
        )}
        <div className="muted small plan">
          weights {formatBytes(plan.weights)} · trained {formatBytes(plan.trainable)} (
          {formatCount(plan.trainableParams)} values) · activations {formatBytes(plan.activations)} ·
          workspace {formatBytes(plan.workspace)}
        </div>
      </td>
      <td>
        <button
          type="button"
          disabled={busy || !chosen.fits}
          aria-describedby={verdictId}
          title={chosen.fits ? undefined : `Does not fit in ${format}: ${chosen.suggestions.join('; ')}`}
          onClick={onLoad}
        >
          Load
        </button>
      </td>
    </tr>
  );
}

/** The loaded model in one sentence: family, parameters, architecture, vocabulary, tensors. */
export function ModelInfoLine({ info }: { info: ModelInfo }) {
  const facts = factsOf(info.config);
  return (
    <p data-testid="model-info">
      <strong>{info.name}</strong>
      {facts ? ` (${facts.familyLabel})` : ''}: {formatCount(info.parameters)} parameters
      {facts ? `, ${architectureSummary(facts)}` : ''}, vocabulary {info.vocabSize}; {info.tensors} tensors (
      {info.format}).
    </p>
  );
}

export function ModelPanel() {
  const model = useLab((s) => s.model);
  const gpu = useLab((s) => s.gpu);
  const draft = useLab((s) => s.draft);
  const setDraftField = useLab((s) => s.setDraftField);
  const loadModel = useLab((s) => s.loadModel);
  const [repo, setRepo] = useState('');
  // The token lives in this component only: never in the store, never persisted.
  const [token, setToken] = useState('');
  const [memoryGiB, setMemoryGiB] = useState<number | undefined>(undefined);
  const folderRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (folderRef.current) folderRef.current.webkitdirectory = true;
  }, []);

  const adapter = gpu.state === 'ready' ? gpu.adapter : undefined;
  const defaultGiB = adapter?.isFallbackAdapter ? 2 : 4;
  const budget: AdapterBudget = {
    memoryBytes: (memoryGiB ?? defaultGiB) * GiB,
    maxStorageBufferBindingSize: adapter?.limits.maxStorageBufferBindingSize ?? 128 * 1024 ** 2,
    maxBufferSize: adapter?.limits.maxBufferSize ?? 256 * 1024 ** 2,
  };
  const busy = model.status === 'loading';
  const loadFiles = (files: FileList | null, what: string) => {
    if (!files || files.length === 0) return;
    const list = [...files];
    const first = list[0] as File & { webkitRelativePath?: string };
    const name = first.webkitRelativePath?.split('/')[0] || what;
    void loadModel({ kind: 'files', files: list }, name);
  };

  return (
    <div className="model-panel">
      <section aria-labelledby="model-current">
        <h3 id="model-current">Current model</h3>
        {model.status === 'none' && <p>No model loaded yet.</p>}
        {model.status === 'loading' && <p role="status">Loading {model.loading}…</p>}
        {model.info && <ModelInfoLine info={model.info} />}
        {model.error && (
          <ErrorBox error={model.error} testId="model-error">
            <button type="button" onClick={() => void loadModel({ kind: 'demo' }, 'demo')}>
              Load the demo model instead
            </button>
          </ErrorBox>
        )}
        <Progress />
        <div className="row">
          <button
            type="button"
            className="primary"
            disabled={busy}
            onClick={() => void loadModel({ kind: 'demo' }, 'demo')}
          >
            Load the demo model
          </button>
          <label>
            Weight format on the GPU{' '}
            <select
              value={draft.weightFormat}
              onChange={(e) => setDraftField('weightFormat', e.target.value)}
              aria-describedby="format-help"
            >
              {FORMATS.map((f) => (
                <option key={f} value={f}>
                  {f}
                </option>
              ))}
            </select>
          </label>
          <span id="format-help" className="muted">
            q8_0 is the paper’s 8-bit; q4_0 halves it again; training every weight needs f32.
          </span>
        </div>
      </section>

      <section aria-labelledby="model-hub">
        <h3 id="model-hub">From the Hugging Face Hub</h3>
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            if (repo.trim())
              void loadModel({ kind: 'hub', repo: repo.trim(), token: token || undefined }, repo.trim());
          }}
        >
          <label>
            Repo id{' '}
            <input
              type="text"
              value={repo}
              placeholder="WizardLMTeam/WizardCoder-1B-V1.0"
              onChange={(e) => setRepo(e.target.value)}
              size={36}
            />
          </label>
          <label>
            Access token (gated models){' '}
            <input
              type="password"
              value={token}
              autoComplete="off"
              onChange={(e) => setToken(e.target.value)}
              size={24}
            />
          </label>
          <button type="submit" disabled={busy || !repo.trim()}>
            Load from the Hub
          </button>
        </form>
        <p className="muted small">
          The token stays in this tab’s memory and is sent only to huggingface.co.
        </p>
      </section>

      <section aria-labelledby="model-local">
        <h3 id="model-local">From this computer</h3>
        <div className="row">
          <label className="file-button">
            Pick a model folder
            <input
              ref={folderRef}
              type="file"
              multiple
              disabled={busy}
              onChange={(e) => loadFiles(e.target.files, 'local folder')}
            />
          </label>
          <label className="file-button">
            Pick model files
            <input
              type="file"
              multiple
              disabled={busy}
              accept=".json,.safetensors,.bin,.gguf,.txt,.model"
              onChange={(e) => loadFiles(e.target.files, 'local files')}
            />
          </label>
          <span className="muted">config.json, tokenizer.json and *.safetensors (or .bin / .gguf).</span>
        </div>
      </section>

      <CachedModels />

      <section aria-labelledby="model-presets">
        <h3 id="model-presets">Known models and whether they fit</h3>
        <p>
          <label>
            GPU memory the lab may use (GiB; WebGPU does not report it){' '}
            <input
              type="number"
              min={0.25}
              step={0.25}
              value={memoryGiB ?? defaultGiB}
              onChange={(e) => setMemoryGiB(Number(e.target.value) || undefined)}
              style={{ width: '5em' }}
            />
          </label>{' '}
          <span className="muted">
            Memory for LoRA rank {draft.lora.r} on each model’s own targets for{' '}
            {draft.lora.targets.join(', ')}, pack length {draft.batching.packLength} ×{' '}
            {draft.batching.packsPerStep}
            {draft.recompute ? ', with recomputation' : ''} (from the Train settings). A model that does not
            fit in the chosen format cannot be loaded from here.
          </span>
        </p>
        <div className="table-scroll">
          <table className="presets" data-testid="presets">
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Family</th>
                <th scope="col">Architecture</th>
                <th scope="col">Parameters</th>
                <th scope="col">Gated</th>
                {FORMATS.map((f) => (
                  <th key={f} scope="col">
                    {f}
                  </th>
                ))}
                <th scope="col">Verdict ({draft.weightFormat})</th>
                <th scope="col">
                  <span className="sr-only">Load</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {PRESETS.map((p) => (
                <PresetRow
                  key={p.id}
                  preset={p}
                  format={draft.weightFormat}
                  budget={budget}
                  shape={presetTrainingShape(draft, p)}
                  busy={busy}
                  onLoad={() =>
                    void (p.id === 'demo'
                      ? loadModel({ kind: 'demo' }, 'demo')
                      : loadModel({ kind: 'hub', repo: p.id, token: token || undefined }, p.id))
                  }
                />
              ))}
            </tbody>
          </table>
        </div>
      </section>
    </div>
  );
}
