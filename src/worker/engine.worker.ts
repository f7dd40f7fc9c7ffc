/// <reference lib="webworker" />
/**
 * The engine in a dedicated worker: it owns the GPU device, the loaded model, the imported dataset
 * and the current run, and answers the page through the typed protocol. Nothing here blocks the UI.
 */
import { VulnLabError } from '../engine/errors.ts';
import { createBrowserContext } from '../engine/gpu/browser.ts';
import { GpuContext } from '../engine/gpu/context.ts';
import { matmul } from '../engine/kernels/matmul.ts';
import { matmulRef } from '../engine/reference/matmul.ts';
import { Rng, randomArray } from '../engine/random.ts';
import { importDataset, type DatasetSource } from '../data/import.ts';
import { extractJavaMethods } from '../data/java.ts';
import { qualityReport } from '../data/quality.ts';
import type { DataRecord } from '../data/types.ts';
import { BlobModelFiles, StaticHttpModelFiles, type ModelFiles } from '../io/files.ts';
import { HubModelFiles } from '../io/hub.ts';
import { CacheApiStore, OpfsCacheStore } from '../io/browser-cache.ts';
import { WeightCache } from '../io/cache.ts';
import { parameterCount } from '../io/load.ts';
import { resolveConfig } from '../train/config.ts';
import { CHART_POINTS, FINISHED_POINTS } from '../train/history.ts';
import {
  DETECTOR_SETTINGS_FILE,
  detectorSettingsFile,
  exportPeftAdapter,
  importPeftAdapter,
  readDetectorSettings,
} from '../train/export.ts';
import { Detector } from '../train/detector.ts';
import { DEFAULT_IG_STEPS } from '../train/explain.ts';
import {
  contextLength as modelContext,
  codeTokensPerPack,
  loadRunModel,
  ntpAnswers,
  codeFrame,
  prepareRunData,
  type PreparedModel,
} from '../train/prepare.ts';
import { normalizeCode } from '../data/normalize.ts';
import { explainView } from './explain-view.ts';
import { RunError, TrainingRun, type RunData, type RunResult } from '../train/run.ts';
import type { RunCheckpoint } from '../train/checkpoint.ts';
import type { RunConfig } from '../train/config.ts';
import { tabularColumns } from './columns.ts';
import { splitDataset } from './dataset-splits.ts';
import {
  CheckpointStorageError,
  holdRunLock,
  RunStore,
  type RunManifest,
  type RunSaver,
} from './run-store.ts';
import type { ImportedAdapter } from '../train/export.ts';
import { exportOnnxDetector, readTokenizerFiles } from '../train/onnx/export.ts';
import type { OnnxWeightFormat } from '../train/onnx/weights.ts';
import type {
  DatasetInfo,
  EngineApi,
  EngineEvent,
  EngineRequest,
  EngineResponses,
  ImportedAdapterInfo,
  ModelSource,
  RequestMessage,
  ResponseMessage,
  SavedModelSource,
  SerializedError,
  SplitOptions,
} from './protocol.ts';

const DEMO_MODEL_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];
const DEMO_DATASET = 'demo/java-vulns.jsonl';
/** Rows of the dataset shown in the mapping preview. */
const PREVIEW_ROWS = 20;

/** Everything the worker holds between requests. */
interface WorkerState {
  context?: Promise<GpuContext>;
  model?: PreparedModel;
  /** Where the loaded model came from: an ONNX export ships its tokenizer files. */
  modelSource?: ModelSource;
  /**
   * The imported dataset: `imported` as read, `records` with the chosen split applied (what runs use),
   * and the page's view of it (re-split without reading the files again).
   */
  dataset?: { name: string; imported: DataRecord[]; records: DataRecord[]; info: DatasetInfo };
  /** The run going on, and the id its checkpoints and events go by. */
  run?: TrainingRun;
  activeRunId?: string;
  /** The latest finished run: scans and exports use it (its weights stay here). */
  lastResult?: {
    result: RunResult;
    run: TrainingRun;
    config: ReturnType<typeof resolveConfig>;
    /** Its weights as a detector (no LoRA dropout) for attributions, made on the first request. */
    explainer?: { detector: Detector; model: PreparedModel['model'] };
  };
  /** A PEFT adapter imported in the Scan panel; while set, scans use it instead of the latest run. */
  imported?: { detector: Detector; config: RunConfig; threshold: number | null; info: ImportedAdapterInfo };
}

const state: WorkerState = {};
/** Interrupted runs in OPFS (undefined where the browser has no OPFS). */
const runStore = RunStore.browser();
/** Hub models are kept converted in OPFS (else the Cache API), so a reload does not download them again. */
const weightCache: WeightCache | undefined = OpfsCacheStore.available()
  ? new WeightCache(new OpfsCacheStore())
  : CacheApiStore.available()
    ? new WeightCache(new CacheApiStore())
    : undefined;

function gpu(): Promise<GpuContext> {
  state.context ??= createBrowserContext();
  // A failed or lost device is forgotten so the next request retries instead of failing forever.
  state.context.then(
    (ctx) => ctx.lost.then(() => (state.context = undefined)),
    () => (state.context = undefined),
  );
  return state.context;
}

function emit(event: EngineEvent): void {
  self.postMessage({ id: 0, event } satisfies ResponseMessage);
}

const assetUrl = (path: string) =>
  new URL(`${import.meta.env.BASE_URL}${path}`, self.location.origin).toString();

/**
 * Creates the GPU context (the page's first request) with the kernel set `kernels` names, if any;
 * the override stays for contexts made later (after a lost device). An unknown name is ignored.
 */
async function probe(kernels: string | undefined): Promise<EngineResponses['probe']> {
  const override = kernels === undefined ? undefined : GpuContext.parseKernelSet(kernels);
  if (kernels !== undefined && !override) {
    console.warn(
      `Unknown kernel set ${JSON.stringify(kernels)} (cpu or gpu): the adapter's default is used.`,
    );
  }
  if (override) GpuContext.setKernelOverride(override);
  const ctx = await gpu();
  // A context made before this request (another request came first) takes the override too.
  if (override) ctx.kernels = override;
  const defaultSet = ctx.cpuAdapter ? 'cpu' : 'gpu';
  return { ...ctx.adapter, kernels: ctx.kernels, kernelsDefault: ctx.kernels === defaultSet };
}

/** A small awkward-shaped matmul checked against the float64 reference: proves kernels run here. */
async function selftest(): Promise<EngineResponses['selftest']> {
  const ctx = await gpu();
  const [M, N, K] = [33, 17, 65];
  const rng = new Rng(2024);
  const a = randomArray(rng, M * K);
  const b = randomArray(rng, N * K);
  const [bufA, bufB, bufC] = await Promise.all([
    ctx.storageFrom('selftest.A', a),
    ctx.storageFrom('selftest.B', b),
    ctx.storage('selftest.C', M * N * 4),
  ]);
  try {
    const dispatch = await matmul(ctx, bufA, bufB, bufC, { M, N, K });
    const start = performance.now();
    await ctx.run([dispatch]);
    const ms = performance.now() - start;
    const got = await ctx.readF32(bufC);
    const expected = matmulRef(a, b, undefined, M, N, K);
    let scale = 0;
    let maxAbs = 0;
    for (let i = 0; i < expected.length; i++) {
      scale = Math.max(scale, Math.abs(expected[i]));
      maxAbs = Math.max(maxAbs, Math.abs(got[i] - expected[i]));
    }
    const maxRelError = maxAbs / scale;
    return { kernel: dispatch.label, maxRelError, ok: maxRelError < 1e-5, ms };
  } finally {
    for (const buffer of [bufA, bufB, bufC]) buffer.destroy();
  }
}

function modelFiles(source: ModelSource): { files: ModelFiles; name: string } {
  switch (source.kind) {
    case 'demo':
      return {
        files: new StaticHttpModelFiles(assetUrl('models/demo/'), DEMO_MODEL_FILES, 'demo'),
        name: 'demo',
      };
    case 'hub':
      return {
        files: new HubModelFiles(source.repo, { revision: source.revision, token: source.token }),
        name: source.repo,
      };
    case 'files':
      return {
        files: BlobModelFiles.fromFiles(source.files),
        name: source.files[0]?.webkitRelativePath.split('/')[0] || 'local files',
      };
  }
}

async function loadModel(source: ModelSource): Promise<EngineResponses['loadModel']> {
  const { files, name } = modelFiles(source);
  const prepared = await loadRunModel(files, name, {
    onProgress: (progress) => emit({ kind: 'model-progress', progress }),
    // Only Hub downloads are worth keeping: the demo is small and local files are already here.
    cache: source.kind === 'hub' ? weightCache : undefined,
  });
  state.model = prepared;
  state.modelSource = source;
  // An imported adapter was set up on the previous model (and its tokenizer), as was the explainer.
  clearAdapter();
  state.lastResult?.explainer?.detector.destroy();
  if (state.lastResult) state.lastResult.explainer = undefined;
  return {
    name,
    config: prepared.model.config,
    parameters: parameterCount(prepared.loaded.config),
    format: prepared.loaded.format,
    tensors: prepared.loaded.tensors.length,
    vocabSize: prepared.tokenizer.vocabSize,
  };
}

async function importData(
  request: Extract<EngineRequest, { type: 'importData' }>,
): Promise<EngineResponses['importData']> {
  let source: DatasetSource;
  let name: string;
  if (request.source.kind === 'demo') {
    name = 'demo dataset';
    source = { url: assetUrl(DEMO_DATASET), name: 'java-vulns.jsonl' };
  } else {
    const files = request.source.files;
    if (files.length === 0) throw new RunError('No file was chosen.', 'Pick or drop a dataset file.');
    name = files.length === 1 ? files[0].name : `${files.length} files`;
    source =
      files.length === 1
        ? { name: files[0].name, data: files[0] }
        : { files: files.map((f) => ({ path: f.webkitRelativePath || f.name, data: f })), name };
  }
  const columns =
    request.source.kind === 'files'
      ? tabularColumns(request.source.files.map((f) => ({ name: f.name, blob: f })))
      : Promise.resolve(undefined);
  const result = await importDataset(source, {
    fields: request.fields,
    onProgress: (p) =>
      emit({ kind: 'data-progress', stage: 'import', done: p.bytesRead, total: p.totalBytes }),
  });
  if (result.records.length === 0) {
    throw new RunError(
      `${name} holds no labelled functions${result.issues[0] ? ` (first problem: ${result.issues[0].message})` : ''}.`,
      'Check the file format and the code/label columns (the mapping can be set by hand).',
    );
  }
  const base = {
    name,
    format: result.format,
    recordCount: result.records.length,
    fieldMapping: result.fieldMapping,
    columns: await columns,
    issues: result.issues.slice(0, 100),
    issueCounts: result.issueCounts,
    parseFailures: result.parseFailures.slice(0, 100),
  };
  return applySplit(name, result.records, base, request.split, request.contextLength);
}

/** Splits the records as asked and reports the splits and the quality per split to the page. */
function applySplit(
  name: string,
  imported: DataRecord[],
  base: Omit<DatasetInfo, 'preview' | 'quality' | 'splits' | 'split'>,
  requested: SplitOptions | undefined,
  contextLengthArg: number | undefined,
): DatasetInfo {
  const { records, splits, info: split } = splitDataset(imported, requested);
  const contextLength =
    contextLengthArg ?? (state.model ? Math.min(2048, modelContext(state.model.model)) : 2048);
  const quality = qualityReport(records, {
    tokenizer: state.model?.tokenizer,
    contextLength,
    splits: splits.assignment,
  });
  const info: DatasetInfo = {
    ...base,
    preview: records
      .slice(0, PREVIEW_ROWS)
      .map(({ code, label, cwe, split }) => ({ code, label, cwe, split })),
    quality,
    splits: splits.summary,
    split: { ...split, contextLength },
  };
  state.dataset = { name, imported, records, info };
  return info;
}

function resplit(request: Extract<EngineRequest, { type: 'splitData' }>): DatasetInfo {
  if (!state.dataset) throw new RunError('No dataset is loaded.', 'Import a dataset in the Data panel.');
  if (state.run) {
    throw new RunError('A run is going on this dataset.', 'Change the split when the run has ended.');
  }
  const { name, imported, info } = state.dataset;
  const base = { ...info } as Partial<DatasetInfo>;
  for (const key of ['preview', 'quality', 'splits', 'split'] as const) delete base[key];
  return applySplit(name, imported, base as DatasetInfo, request.split, request.contextLength);
}

async function startRun(
  request: Extract<EngineRequest, { type: 'startRun' }>,
): Promise<EngineResponses['startRun']> {
  if (state.run) throw new RunError('A run is already going.', 'Stop it first, or wait until it finishes.');
  if (!state.model)
    throw new RunError('No model is loaded.', 'Load the demo model or another model in the Model panel.');
  if (!state.dataset) throw new RunError('No dataset is loaded.', 'Import a dataset in the Data panel.');
  const config = resolveConfig(request.config);
  const ctx = await gpu();
  const packLength = Math.min(config.batching.packLength, modelContext(state.model.model));
  const { data, splits } = prepareRunData(
    state.dataset.records,
    state.model.tokenizer,
    config,
    packLength,
    (done, total) => emit({ kind: 'data-progress', stage: 'tokenize', done, total }),
  );
  const runId = request.runId ?? `run-${Date.now().toString(36)}`;
  const manifest: RunManifest = {
    format: 'vulnlab-browser-run',
    version: 1,
    runId,
    name: request.name ?? runId,
    createdAt: Date.now(),
    model: savedModelSource(state.modelSource, state.model.model.name),
    modelName: state.model.model.name,
    dataset: { name: state.dataset.name, records: state.dataset.records.length },
    config,
  };
  const saver = runStore?.saver(manifest, state.dataset.records, splits.assignment);
  return execute(ctx, runId, config, data, saver);
}

function savedModelSource(source: ModelSource | undefined, name: string): SavedModelSource {
  if (source?.kind === 'demo') return { kind: 'demo' };
  if (source?.kind === 'hub') return { kind: 'hub', repo: source.repo, revision: source.revision };
  return { kind: 'files', name };
}

/** How often at most the page gets a live run's thinned curves while steps arrive. */
const HISTORY_EVERY_MS = 250;

/**
 * Runs a new or resumed run to its end. Checkpoints go to OPFS (a storage failure turns them off
 * with a warning; the run goes on); the finished run's checkpoint is deleted, a failed run's kept
 * so the page can offer to resume it.
 */
async function execute(
  ctx: GpuContext,
  runId: string,
  config: RunConfig,
  data: RunData,
  saver: RunSaver | undefined,
  resume?: RunCheckpoint,
): Promise<EngineResponses['startRun']> {
  let current: TrainingRun | undefined;
  // The page draws the run's own history, thinned here: sent at once for rare events, at most every
  // HISTORY_EVERY_MS while steps arrive.
  let historyTimer: ReturnType<typeof setTimeout> | undefined;
  const sendHistory = () => {
    clearTimeout(historyTimer);
    historyTimer = undefined;
    if (current) emit({ kind: 'run-history', runId, history: current.curves.thin(CHART_POINTS) });
  };
  const checkpointsOff = (error: SerializedError, step: number) => {
    emit({ kind: 'checkpoints-off', runId, error });
    emit({
      kind: 'run',
      runId,
      event: {
        type: 'warning',
        step,
        message: `Checkpoints are off: ${error.message} The run goes on, but cannot be resumed after a reload.`,
      },
    });
  };
  state.lastResult?.run.destroy();
  state.lastResult?.explainer?.detector.destroy();
  state.lastResult = undefined;
  const release = holdRunLock(runId);
  state.activeRunId = runId;
  try {
    current = await TrainingRun.create(
      ctx,
      config,
      state.model!.model,
      data,
      (event) => {
        if (event.type === 'started' && saver) saver.manifest.totalSteps = event.totalSteps;
        emit({ kind: 'run', runId, event });
        if (event.type !== 'step') sendHistory();
        else historyTimer ??= setTimeout(sendHistory, HISTORY_EVERY_MS);
      },
      {
        resume,
        onCheckpoint: saver
          ? async (checkpoint) => {
              await saver.save(checkpoint, (error) => checkpointsOff(error.serialize(), checkpoint.step));
            }
          : undefined,
      },
    );
    if (!runStore) {
      checkpointsOff(
        {
          code: 'storage-unavailable',
          message: 'This browser offers no private file storage (OPFS) for checkpoints.',
          hint: 'Use Chrome or Edge in a normal (not private) window to resume runs after a reload.',
        },
        resume?.step ?? 0,
      );
    }
    // A resumed run's curves up to its checkpoint, before its first event.
    if (resume) sendHistory();
    state.run = current;
    const result = await current.run();
    state.lastResult = { result, run: current, config };
    await saver?.discard();
    const { trainables, ...summary } = result; // weights stay in the worker
    return { ...summary, curves: current.curves.thin(FINISHED_POINTS) };
  } catch (error) {
    current?.destroy();
    // Kept for a resume only when a checkpoint was completed; a half-written first one is removed.
    if (saver && !saver.hasCheckpoint) await saver.discard();
    throw error;
  } finally {
    clearTimeout(historyTimer);
    state.run = undefined;
    state.activeRunId = undefined;
    release();
  }
}

function requireStore(): RunStore {
  if (!runStore) {
    throw new CheckpointStorageError(
      'storage-unavailable',
      'This browser offers no private file storage (OPFS), so no run was saved.',
      'Use Chrome or Edge in a normal (not private) window.',
    );
  }
  return runStore;
}

async function resumeRun(runId: string): Promise<EngineResponses['resumeRun']> {
  if (state.run) throw new RunError('A run is already going.', 'Stop it first, or wait until it finishes.');
  const store = requireStore();
  if (await store.isHeldElsewhere(runId)) {
    throw new RunError('This run is going on in another tab.', 'Watch it there, or close that tab first.');
  }
  const saved = await store.load(runId);
  const { manifest, checkpoint } = saved;
  if (!state.model || state.model.model.name !== manifest.modelName) {
    throw new RunError(
      `The run trained ${manifest.modelName}, which is not the loaded model${state.model ? ` (${state.model.model.name})` : ''}.`,
      manifest.model.kind === 'files'
        ? `Pick the same model folder (${manifest.modelName}) in the Model panel, then resume again.`
        : `Load ${manifest.modelName} in the Model panel, then resume again.`,
    );
  }
  const ctx = await gpu();
  const config = checkpoint.config;
  const packLength = Math.min(config.batching.packLength, modelContext(state.model.model));
  // The saved records carry the splits the run was given, so the training data is the same.
  const { data } = prepareRunData(saved.records, state.model.tokenizer, config, packLength, (done, total) =>
    emit({ kind: 'data-progress', stage: 'tokenize', done, total }),
  );
  // Runs saved before the checkpoint carried the curves kept them in history.json.
  const legacy = saved.legacyHistory ?? { steps: [], evals: [], markers: [] };
  const curves = checkpoint.curves ?? {
    steps: legacy.steps.filter((p) => p.step <= checkpoint.step),
    evals: legacy.evals.filter((e) => e.step <= checkpoint.step),
    markers: legacy.markers.filter((m) => m.step <= checkpoint.step),
  };
  return execute(ctx, runId, config, data, store.resumedSaver(manifest), { ...checkpoint, curves });
}

async function listCache(): Promise<EngineResponses['listCache']> {
  const [models, checkpointBytes, storage] = await Promise.all([
    weightCache?.list() ?? [],
    runStore?.bytes() ?? 0,
    (weightCache?.estimate() ?? runStore?.estimate())?.catch(() => undefined),
  ]);
  return { models, checkpointBytes, storage, store: weightCache?.store.kind };
}

function requireRun(): TrainingRun {
  if (!state.run) throw new RunError('No run is going.', 'Start a run in the Train panel.');
  return state.run;
}

const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const;

async function importAdapter(files: File[]): Promise<EngineResponses['importAdapter']> {
  if (state.run) throw new RunError('A run is going.', 'Import the adapter when the run has ended.');
  if (!state.model) {
    throw new RunError(
      'No base model is loaded: an adapter holds only the LoRA weights and the classification head.',
      'Load the model the adapter was trained on in the Model panel, then import the adapter again.',
    );
  }
  const byName = new Map(files.map((f) => [f.name, f]));
  const missing = ADAPTER_FILES.filter((name) => !byName.has(name));
  if (missing.length) {
    throw new RunError(
      `The adapter needs ${missing.join(' and ')} (got ${files.map((f) => f.name).join(', ') || 'no files'}).`,
      'Drop the whole adapter folder, or pick adapter_config.json and adapter_model.safetensors together.',
    );
  }
  const adapter = await importPeftAdapter(
    await byName.get(ADAPTER_FILES[0])!.text(),
    new Uint8Array(await byName.get(ADAPTER_FILES[1])!.arrayBuffer()),
  );
  const settingsFile = byName.get(DETECTOR_SETTINGS_FILE);
  const settings = settingsFile ? readDetectorSettings(await settingsFile.text()) : undefined;
  const ntp = adapter.config.taskType === 'CAUSAL_LM';
  // Scored as its run scored: its pack length, attention mode and base weight format, truncation and
  // normalization.
  const detector = await Detector.create(await gpu(), state.model.model, adapter, {
    packLength: settings?.packLength,
    mode: settings?.batching === 'paper' ? 'paper' : 'packed',
    weightFormat: settings?.weightFormat,
    answers: ntp ? ntpAnswers(state.model.tokenizer) : undefined,
  });
  const baseModel = settings?.baseModel ?? adapter.config.baseModel;
  const info: ImportedAdapterInfo = {
    name: files[0]?.webkitRelativePath.split('/')[0] ?? '',
    baseModel,
    modelName: state.model.model.name,
    r: adapter.config.r,
    alpha: adapter.config.alpha,
    tensors: adapter.tensors.size,
    objective: ntp ? 'ntp' : 'cls',
    threshold: settings?.threshold ?? null,
    packLength: detector.packLength,
    validationRocAuc: settings?.validation?.rocAuc ?? null,
    warning:
      baseModel && baseModel !== state.model.model.name
        ? `The adapter was trained on ${baseModel}; it scores with the loaded ${state.model.model.name}.`
        : undefined,
  };
  state.imported?.detector.destroy();
  state.imported = {
    detector,
    config: resolveConfig({
      objective: ntp ? 'ntp' : 'cls',
      ...(settings && { truncation: settings.truncation, normalize: settings.normalize }),
    }),
    threshold: settings?.threshold ?? null,
    info,
  };
  return info;
}

function clearAdapter(): void {
  state.imported?.detector.destroy();
  state.imported = undefined;
}

async function scan(code: string): Promise<EngineResponses['scan']> {
  if (!state.imported && (!state.lastResult || !state.model)) {
    throw new RunError(
      'There is no trained detector yet.',
      'Train a run (or the classroom demo) first, or import an adapter exported from a run.',
    );
  }
  const extracted = extractJavaMethods(code);
  // Code that is one method, not a whole class, is scanned as it is.
  const methods =
    extracted.ok && extracted.methods.length > 0
      ? extracted.methods
      : [{ name: '(pasted code)', code, line: 1 }];
  const records: DataRecord[] = methods.map((m) => ({ code: m.code, label: 0, split: 'test' }));
  const scorer = state.imported
    ? {
        config: state.imported.config,
        packLength: state.imported.detector.packLength,
        score: state.imported.detector,
      }
    : {
        config: state.lastResult!.config,
        packLength: state.lastResult!.run.packLength,
        score: state.lastResult!.run,
      };
  const { data } = prepareRunData(records, state.model!.tokenizer, scorer.config, scorer.packLength);
  const scored = await scorer.score.score(data.test);
  const byIndex = new Map(scored.map((s) => [s.exampleIndex, s.score]));
  return {
    methods: methods
      .map((m, i) => ({ name: m.name, line: m.line, code: m.code, probability: byIndex.get(i) ?? NaN }))
      .sort((a, b) => b.probability - a.probability),
    parseFailures: extracted.ok ? [] : [{ file: 'pasted code', message: extracted.message }],
    threshold: state.imported ? state.imported.threshold : state.lastResult!.result.threshold,
    note: state.imported
      ? `Scored with the imported adapter${state.imported.info.name ? ` ${state.imported.info.name}` : ''} on ${state.imported.info.modelName}.`
      : 'Scored with the latest run.',
  };
}

/**
 * The detector attributions use: the imported adapter, else the latest run's weights loaded as a
 * detector (a training run's LoRA has dropout, which attributions refuse; a detector evaluates
 * without it, and scores as the run does).
 */
async function explainingDetector(): Promise<{ detector: Detector; config: RunConfig }> {
  if (state.imported) return { detector: state.imported.detector, config: state.imported.config };
  const last = state.lastResult;
  if (!last || !state.model) {
    throw new RunError(
      'There is no trained detector yet.',
      'Train a run (or the classroom demo) first, or import an adapter exported from a run.',
    );
  }
  if (last.explainer?.model !== state.model.model) {
    last.explainer?.detector.destroy();
    last.explainer = undefined;
    const { result, run, config } = last;
    const ntp = config.objective === 'ntp';
    const detector = await Detector.create(
      await gpu(),
      state.model.model,
      {
        config: {
          ...config.lora,
          dropout: 0,
          baseModel: state.model.model.name,
          taskType: ntp ? 'CAUSAL_LM' : 'SEQ_CLS',
        },
        tensors: result.trainables,
      },
      {
        packLength: run.packLength,
        mode: config.batching.mode === 'paper' ? 'paper' : 'packed',
        weightFormat: config.weightFormat,
        answers: ntp ? ntpAnswers(state.model.tokenizer) : undefined,
      },
    );
    last.explainer = { detector, model: state.model.model };
  }
  return { detector: last.explainer.detector, config: last.config };
}

async function explain(request: EngineApi['explain'][0]): Promise<EngineResponses['explain']> {
  if (state.run) throw new RunError('A run is going.', 'Explain scans when the run has ended.');
  const start = performance.now();
  const { detector, config } = await explainingDetector();
  const tokenizer = state.model!.tokenizer;
  const records: DataRecord[] = request.methods.map((m) => ({ code: m.code, label: 0, split: 'test' }));
  const { data } = prepareRunData(records, tokenizer, config, detector.packLength);
  const steps = request.method === 'ig' ? (request.steps ?? DEFAULT_IG_STEPS) : undefined;
  const attributions = await detector.explain(data.test, { method: request.method, steps });
  const frame = codeFrame(tokenizer, detector.answers !== undefined ? 'ntp' : 'cls');
  const before = frame.before.length;
  const after = frame.after.length;
  const byIndex = new Map(
    data.test.map((e, i) => [e.exampleIndex, { example: e, attribution: attributions[i] }]),
  );
  return {
    method: request.method,
    ...(steps !== undefined && { steps }),
    ms: performance.now() - start,
    methods: request.methods.map((m, i) => {
      const found = byIndex.get(i);
      if (!found) {
        return {
          ...m,
          margin: NaN,
          segments: [{ text: m.code, score: null }],
          lines: [],
          topLines: [],
          dropped: true,
        };
      }
      const { tokens } = found.example;
      const view = explainView({
        original: m.code,
        normalized: normalizeCode(m.code, config.normalize),
        normalize: config.normalize,
        codeTokens: tokens.subarray(before, tokens.length - after),
        attributions: found.attribution.tokens.subarray(before, tokens.length - after),
        decode: (ids) => tokenizer.decode(ids),
      });
      return {
        ...m,
        margin: found.attribution.margin,
        ...(found.attribution.baselineMargin !== undefined && {
          baselineMargin: found.attribution.baselineMargin,
        }),
        ...view,
      };
    }),
  };
}

function exportAdapter(): EngineResponses['exportAdapter'] {
  if (!state.lastResult || !state.model)
    throw new RunError('There is no finished run to export.', 'Train a run first.');
  const { result, run: finished, config } = state.lastResult;
  const shapes = new Map([...result.trainables.keys()].map((name) => [name, finished.shapeOf(name)]));
  return [
    ...exportPeftAdapter(result.trainables, shapes, config, state.model.model.name),
    // The threshold and data settings, so an import here or `vulnlab scan` scores as this run did.
    detectorSettingsFile({
      threshold: result.threshold,
      packLength: finished.packLength,
      batching: config.batching.mode,
      truncation: config.truncation,
      normalize: config.normalize,
      weightFormat: config.weightFormat,
      baseModel: state.model.model.name,
      validation: { rocAuc: result.validation.rocAuc, n: result.validation.n },
    }),
  ];
}

async function exportOnnx(format: OnnxWeightFormat): Promise<EngineResponses['exportOnnx']> {
  if (!state.lastResult || !state.model || !state.modelSource) {
    throw new RunError('There is no finished run to export.', 'Train a run first.');
  }
  const { result, run: finished, config } = state.lastResult;
  // Code framed as in the run: the tokenizer's BOS, and for a next-token run the paper's prompt.
  const frame = codeFrame(state.model.tokenizer, config.objective);
  const adapter: ImportedAdapter = {
    config: {
      ...config.lora,
      baseModel: state.model.model.name,
      taskType: frame.answers ? 'CAUSAL_LM' : 'SEQ_CLS',
    },
    tensors: result.trainables,
  };
  const exported = exportOnnxDetector(state.model.model, adapter, {
    format,
    threshold: result.threshold,
    tokenization: {
      maxTokens: codeTokensPerPack(finished.packLength, frame),
      truncation: config.truncation,
      normalize: config.normalize,
      padId: state.model.model.padId,
      frame: { before: frame.before, after: frame.after },
    },
    answers: frame.answers ?? undefined,
    tokenizerFiles: await readTokenizerFiles(modelFiles(state.modelSource).files),
  });
  return {
    files: exported.files.map((f) => ({ name: f.name, blob: new Blob(f.chunks as BlobPart[]) })),
    metadata: exported.metadata,
  };
}

async function handle(request: EngineRequest): Promise<EngineResponses[EngineRequest['type']]> {
  switch (request.type) {
    case 'probe':
      return probe(request.kernels);
    case 'selftest':
      return selftest();
    case 'loadModel':
      return loadModel(request.source);
    case 'importData':
      return importData(request);
    case 'splitData':
      return resplit(request);
    case 'startRun':
      return startRun(request);
    case 'listCheckpoints':
      return runStore ? runStore.list() : [];
    case 'resumeRun':
      return resumeRun(request.runId);
    case 'listCache':
      return listCache();
    case 'deleteCache':
      if (!weightCache) throw new RunError('This browser has no model cache.', 'Nothing to delete.');
      return weightCache.delete(request.key);
    case 'deleteCheckpoint':
      if (state.run && state.activeRunId === request.runId) {
        throw new RunError('This run is going on.', 'Stop it first; its checkpoint is removed when it ends.');
      }
      return requireStore().remove(request.runId);
    case 'controlRun': {
      const current = requireRun();
      if (request.action === 'pause') current.pause();
      else if (request.action === 'resume') current.resume();
      else current.stop();
      return;
    }
    case 'updateRun':
      requireRun().update(request.path, request.value);
      return;
    case 'scan':
      return scan(request.code);
    case 'explain':
      return explain(request);
    case 'importAdapter':
      return importAdapter(request.files);
    case 'clearAdapter':
      return clearAdapter();
    case 'exportAdapter':
      return exportAdapter();
    case 'exportOnnx':
      return exportOnnx(request.format);
  }
}

function serialize(error: unknown): SerializedError {
  if (error instanceof CheckpointStorageError) return error.serialize();
  if (error instanceof VulnLabError) return { code: error.code, message: error.message, hint: error.hint };
  return {
    code: 'internal',
    message: error instanceof Error ? error.message : String(error),
    hint: 'This is a bug in VulnLab; please report it with the message above.',
  };
}

self.onmessage = async (event: MessageEvent<RequestMessage>) => {
  const { id, ...request } = event.data;
  let response: ResponseMessage;
  try {
    response = { id, ok: true, result: await handle(request as EngineRequest) };
  } catch (error) {
    response = { id, ok: false, error: serialize(error) };
  }
  self.postMessage(response);
};
