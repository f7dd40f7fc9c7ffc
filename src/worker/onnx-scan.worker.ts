/// <reference lib="webworker" />
/**
 * Scans Java code with an exported ONNX detector through onnxruntime-web, off the UI thread. The
 * WebGPU execution provider is used when the browser has a WebGPU adapter and ONNX Runtime can start
 * on it; otherwise WASM (CPU), with the reason reported. ORT's WASM binary is a bundled asset served by
 * the app itself: the model, the code and the runtime never leave the machine.
 */
import * as ort from 'onnxruntime-web';
import ortWasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.jsep.wasm?url';
import { unzipSync } from 'fflate';
import { extractJavaMethods } from '../data/java.ts';
import { VulnLabError } from '../engine/errors.ts';
import { loadTokenizer, type CodeTokenizer } from '../io/tokenizer.ts';
import type { DetectorTokenization } from '../train/onnx/export.ts';
import {
  OnnxDetectorError,
  checkExternalData,
  inspectOnnxDetector,
  runtimeLoadError,
  type OnnxDetectorInfo,
} from '../train/onnx/inspect.ts';
import { detectorTokens, scoreWithSession, type OrtTensorConstructor } from '../train/onnx/scan.ts';
import type {
  ExecutionPreference,
  OnnxDetectorSummary,
  OnnxScanApi,
  OnnxScanMessage,
  OnnxScanProgress,
  OnnxScanRequest,
} from './onnx-scan-client.ts';
import type { SerializedError } from './protocol.ts';

ort.env.wasm.wasmPaths = { wasm: new URL(ortWasmUrl, self.location.href).href };
ort.env.wasm.proxy = false; // already off the UI thread
ort.env.logLevel = 'error';

interface Loaded {
  session: ort.InferenceSession;
  summary: OnnxDetectorSummary;
  tokenizer: CodeTokenizer;
  tokenization: DetectorTokenization;
  heads: number;
}

let loaded: Loaded | undefined;

function progress(p: OnnxScanProgress): void {
  self.postMessage({ id: 0, progress: p } satisfies OnnxScanMessage);
}

/** A file's bytes, read in slices so the panel can show progress on large models. */
async function readFile(file: File, name: string): Promise<Uint8Array> {
  const out = new Uint8Array(file.size);
  const reader = file.stream().getReader();
  let at = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    out.set(value, at);
    at += value.byteLength;
    progress({ stage: 'read', done: at, total: file.size, label: `reading ${name}` });
  }
  return out;
}

const baseName = (path: string) => path.split('/').pop() ?? path;

/** The picked files by base name; zip archives (an export folder zipped) are opened. */
async function gather(files: File[]): Promise<Map<string, Uint8Array>> {
  const entries = new Map<string, Uint8Array>();
  for (const file of files) {
    const bytes = await readFile(file, file.name);
    if (file.name.toLowerCase().endsWith('.zip')) {
      let unzipped: Record<string, Uint8Array>;
      try {
        unzipped = unzipSync(bytes);
      } catch (error) {
        throw new OnnxDetectorError(
          'corrupted',
          `${file.name} is not a readable zip archive: ${(error as Error).message}.`,
          'Zip the folder export-onnx wrote again, or pick its files directly.',
        );
      }
      for (const [path, data] of Object.entries(unzipped))
        if (!path.endsWith('/')) entries.set(baseName(path), data);
    } else entries.set(file.name, bytes);
  }
  return entries;
}

/** Why WebGPU cannot be used here, or null when an adapter is available. */
async function webgpuUnavailable(): Promise<string | null> {
  const gpu = (self.navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return 'this browser exposes no WebGPU (navigator.gpu is missing or disabled)';
  try {
    const adapter = await gpu.requestAdapter();
    return adapter ? null : 'the browser has WebGPU but found no GPU adapter';
  } catch (error) {
    return `requesting a WebGPU adapter failed (${(error as Error).message})`;
  }
}

async function load(files: File[], preference: ExecutionPreference): Promise<OnnxDetectorSummary> {
  const started = performance.now();
  const entries = await gather(files);
  const onnxNames = [...entries.keys()].filter((n) => n.toLowerCase().endsWith('.onnx'));
  if (onnxNames.length !== 1) {
    throw new OnnxDetectorError(
      'not-a-detector',
      onnxNames.length === 0
        ? 'No .onnx file was picked.'
        : `Several .onnx files were picked (${onnxNames.join(', ')}).`,
      'Pick one exported detector: its .onnx, tokenizer.json (and .onnx.data if there is one), or the zip of its folder.',
    );
  }
  const name = onnxNames[0];
  const modelBytes = entries.get(name)!;
  const info: OnnxDetectorInfo = inspectOnnxDetector(modelBytes, name);
  checkExternalData(info, name, new Map([...entries].map(([n, b]) => [n, b.byteLength])));
  const tokenizerJson = entries.get('tokenizer.json');
  if (!tokenizerJson) {
    throw new OnnxDetectorError(
      'not-a-detector',
      `${name} came without tokenizer.json.`,
      'Pick tokenizer.json from the export folder together with the model (it turns code into input_ids).',
    );
  }
  const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);
  const meta = info.metadata;
  const tokenizer = loadTokenizer(text(tokenizerJson)!, text(entries.get('tokenizer_config.json')), {
    embeddingRows: meta?.model.vocab_size,
  });
  const tokenization: DetectorTokenization = meta?.tokenizer ?? {
    maxTokens: 1023,
    truncation: 'head',
    normalize: {},
    padId: tokenizer.padId,
  };

  const externalData = info.externalData.map(({ location }) => ({
    path: location,
    data: (entries.get(location) ?? entries.get(baseName(location)))!,
  }));
  const create = (executionProviders: string[]) =>
    ort.InferenceSession.create(modelBytes, {
      executionProviders,
      externalData,
      graphOptimizationLevel: 'all',
    });
  progress({ stage: 'session', done: 0, total: 1, label: 'starting ONNX Runtime' });
  let fallbackReason: string | undefined =
    preference === 'wasm' ? 'WASM was chosen in the panel' : ((await webgpuUnavailable()) ?? undefined);
  let session: ort.InferenceSession | undefined;
  if (!fallbackReason) {
    try {
      session = await create(['webgpu']);
    } catch (error) {
      fallbackReason = `ONNX Runtime could not start on WebGPU (${(error as Error).message})`;
    }
  }
  if (!session) {
    try {
      session = await create(['wasm']);
    } catch (error) {
      throw runtimeLoadError(error, name, 'ONNX Runtime (WASM)');
    }
  }
  progress({ stage: 'session', done: 1, total: 1, label: 'ready' });
  await loaded?.session.release();
  const summary: OnnxDetectorSummary = {
    name,
    executionProvider: fallbackReason ? 'wasm' : 'webgpu',
    fallbackReason,
    baseModel: meta?.baseModel,
    weightFormat: meta?.weightFormat,
    threshold: meta?.threshold ?? null,
    foreign: !meta,
    externalData: info.externalData.map((e) => e.location),
    loadMs: performance.now() - started,
  };
  loaded = { session, summary, tokenizer, tokenization, heads: meta?.model.n_head ?? 1 };
  return summary;
}

async function scan(code: string): Promise<OnnxScanApi['scan'][1]> {
  if (!loaded) {
    throw new OnnxDetectorError(
      'not-a-detector',
      'No ONNX detector is loaded.',
      'Pick an exported .onnx detector first.',
    );
  }
  const started = performance.now();
  const extracted = extractJavaMethods(code);
  // Code that is one method, not a whole class, is scanned as it is.
  const methods =
    extracted.ok && extracted.methods.length > 0
      ? extracted.methods
      : [{ name: '(pasted code)', code, line: 1 }];
  const { tokenizer, tokenization } = loaded;
  const rows = methods.map((m) => detectorTokens(m.code, tokenizer, tokenization));
  const scores = await scoreWithSession(loaded.session, ort.Tensor as unknown as OrtTensorConstructor, rows, {
    padId: tokenization.padId,
    heads: loaded.heads,
    onProgress: (done, total) =>
      progress({ stage: 'scan', done, total, label: `scoring ${done}/${total} methods` }),
  });
  return {
    methods: methods
      .map((m, i) => ({ name: m.name, line: m.line, code: m.code, probability: scores[i].probability }))
      .sort((a, b) => b.probability - a.probability),
    parseFailures: extracted.ok ? [] : [{ file: 'pasted code', message: extracted.message }],
    threshold: loaded.summary.threshold,
    executionProvider: loaded.summary.executionProvider,
    ms: performance.now() - started,
  };
}

async function handle(request: OnnxScanRequest): Promise<unknown> {
  switch (request.type) {
    case 'load':
      return load(request.files, request.preference);
    case 'scan':
      return scan(request.code);
    case 'unload':
      await loaded?.session.release();
      loaded = undefined;
      return;
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

self.onmessage = async (event: MessageEvent<OnnxScanRequest & { id: number }>) => {
  const { id, ...request } = event.data;
  let message: OnnxScanMessage;
  try {
    message = { id, ok: true, result: await handle(request as OnnxScanRequest) };
  } catch (error) {
    message = { id, ok: false, error: serialize(error) };
  }
  self.postMessage(message);
};
