/// <reference lib="webworker" />
/**
 * The engine in a dedicated worker: it owns the GPU device, the loaded model, the imported dataset
 * and the current run, and answers the page through the typed protocol. Nothing here blocks the UI.
 */
import { VulnLabError } from '../engine/errors.ts';
import { createBrowserContext } from '../engine/gpu/browser.ts';
import type { GpuContext } from '../engine/gpu/context.ts';
import { matmul } from '../engine/kernels/matmul.ts';
import { matmulRef } from '../engine/reference/matmul.ts';
import { Rng, randomArray } from '../engine/random.ts';
import { importDataset, type DatasetSource } from '../data/import.ts';
import { extractJavaMethods } from '../data/java.ts';
import { qualityReport } from '../data/quality.ts';
import { assignSplits } from '../data/splits.ts';
import type { DataRecord } from '../data/types.ts';
import { BlobModelFiles, StaticHttpModelFiles, type ModelFiles } from '../io/files.ts';
import { HubModelFiles } from '../io/hub.ts';
import { parameterCount } from '../io/load.ts';
import { resolveConfig } from '../train/config.ts';
import { exportPeftAdapter } from '../train/export.ts';
import { loadRunModel, prepareRunData, type PreparedModel } from '../train/prepare.ts';
import { RunError, TrainingRun, type RunResult } from '../train/run.ts';
import type {
  DatasetInfo,
  EngineEvent,
  EngineRequest,
  EngineResponses,
  ModelSource,
  RequestMessage,
  ResponseMessage,
  SerializedError,
} from './protocol.ts';

const DEMO_MODEL_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];
const DEMO_DATASET = 'demo/java-vulns.jsonl';
/** Rows of the dataset shown in the mapping preview. */
const PREVIEW_ROWS = 20;

let context: Promise<GpuContext> | undefined;
let model: PreparedModel | undefined;
let dataset: { name: string; records: DataRecord[] } | undefined;
let run: TrainingRun | undefined;
let lastResult: { result: RunResult; run: TrainingRun; config: ReturnType<typeof resolveConfig> } | undefined;

function gpu(): Promise<GpuContext> {
  context ??= createBrowserContext();
  // A failed or lost device is forgotten so the next request retries instead of failing forever.
  context.then(
    (ctx) => ctx.lost.then(() => (context = undefined)),
    () => (context = undefined),
  );
  return context;
}

function emit(event: EngineEvent): void {
  self.postMessage({ id: 0, event } satisfies ResponseMessage);
}

const assetUrl = (path: string) =>
  new URL(`${import.meta.env.BASE_URL}${path}`, self.location.origin).toString();

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
  const prepared = await loadRunModel(files, name, (progress) => emit({ kind: 'model-progress', progress }));
  model = prepared;
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
  dataset = { name, records: result.records };
  const splits = assignSplits(result.records, { strategy: 'auto', seed: 42 });
  const quality = qualityReport(result.records, {
    tokenizer: model?.tokenizer,
    contextLength: model ? Math.min(2048, model.model.config.n_positions) : 2048,
    splits: splits.assignment,
  });
  const info: DatasetInfo = {
    name,
    format: result.format,
    recordCount: result.records.length,
    preview: result.records
      .slice(0, PREVIEW_ROWS)
      .map(({ code, label, cwe, split }) => ({ code, label, cwe, split })),
    fieldMapping: result.fieldMapping,
    issues: result.issues.slice(0, 100),
    issueCounts: result.issueCounts,
    parseFailures: result.parseFailures.slice(0, 100),
    quality,
    splits: splits.summary,
  };
  return info;
}

async function startRun(
  request: Extract<EngineRequest, { type: 'startRun' }>,
): Promise<EngineResponses['startRun']> {
  if (run) throw new RunError('A run is already going.', 'Stop it first, or wait until it finishes.');
  if (!model)
    throw new RunError('No model is loaded.', 'Load the demo model or another model in the Model panel.');
  if (!dataset) throw new RunError('No dataset is loaded.', 'Import a dataset in the Data panel.');
  const config = resolveConfig(request.config);
  const ctx = await gpu();
  const packLength = Math.min(config.batching.packLength, model.model.config.n_positions);
  const { data } = prepareRunData(dataset.records, model.tokenizer, config, packLength, (done, total) =>
    emit({ kind: 'data-progress', stage: 'tokenize', done, total }),
  );
  lastResult?.run.destroy();
  lastResult = undefined;
  const current = await TrainingRun.create(ctx, config, model.model, data, (event) =>
    emit({ kind: 'run', event }),
  );
  run = current;
  try {
    const result = await current.run();
    lastResult = { result, run: current, config };
    const { trainables, ...summary } = result; // weights stay in the worker
    return summary;
  } catch (error) {
    current.destroy();
    throw error;
  } finally {
    run = undefined;
  }
}

function requireRun(): TrainingRun {
  if (!run) throw new RunError('No run is going.', 'Start a run in the Train panel.');
  return run;
}

async function scan(code: string): Promise<EngineResponses['scan']> {
  if (!lastResult || !model) {
    throw new RunError('There is no trained detector yet.', 'Train a run (or the classroom demo) first.');
  }
  const extracted = extractJavaMethods(code);
  // Code that is one method, not a whole class, is scanned as it is.
  const methods =
    extracted.ok && extracted.methods.length > 0
      ? extracted.methods
      : [{ name: '(pasted code)', code, line: 1 }];
  const records: DataRecord[] = methods.map((m) => ({ code: m.code, label: 0, split: 'test' }));
  const packLength = lastResult.run.packLength;
  const { data } = prepareRunData(records, model.tokenizer, lastResult.config, packLength);
  const scored = await lastResult.run.score(data.test);
  const byIndex = new Map(scored.map((s) => [s.exampleIndex, s.score]));
  return {
    methods: methods
      .map((m, i) => ({ name: m.name, line: m.line, code: m.code, probability: byIndex.get(i) ?? NaN }))
      .sort((a, b) => b.probability - a.probability),
    parseFailures: extracted.ok ? [] : [{ file: 'pasted code', message: extracted.message }],
  };
}

function exportAdapter(): EngineResponses['exportAdapter'] {
  if (!lastResult || !model) throw new RunError('There is no finished run to export.', 'Train a run first.');
  const { result, run: finished, config } = lastResult;
  const shapes = new Map([...result.trainables.keys()].map((name) => [name, finished.shapeOf(name)]));
  return exportPeftAdapter(result.trainables, shapes, config, model.model.name);
}

async function handle(request: EngineRequest): Promise<EngineResponses[EngineRequest['type']]> {
  switch (request.type) {
    case 'probe':
      return (await gpu()).adapter;
    case 'selftest':
      return selftest();
    case 'loadModel':
      return loadModel(request.source);
    case 'importData':
      return importData(request);
    case 'startRun':
      return startRun(request);
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
    case 'exportAdapter':
      return exportAdapter();
  }
}

function serialize(error: unknown): SerializedError {
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
