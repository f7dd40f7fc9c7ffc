/**
 * The page's side of the ONNX scan worker (onnx-scan.worker.ts): an exported detector run by
 * onnxruntime-web, on WebGPU where the browser has it and on WASM (CPU) otherwise. Typed
 * request/response pairs plus progress events, as with the engine worker.
 */
import { WorkerChannel } from './client.ts';
import type { ScanResult, SerializedError } from './protocol.ts';

export type ExecutionPreference = 'auto' | 'wasm';

export interface OnnxDetectorSummary {
  /** The .onnx file name. */
  name: string;
  /** ONNX Runtime's execution provider in use. */
  executionProvider: 'webgpu' | 'wasm';
  /** Why WebGPU is not used, when it is not (said plainly in the panel). */
  fallbackReason?: string;
  baseModel?: string;
  weightFormat?: string;
  threshold: number | null;
  /** Not a VulnLab export but with the detector's inputs and outputs: tokenization defaults apply. */
  foreign: boolean;
  externalData: string[];
  loadMs: number;
}

export interface OnnxScanResult extends ScanResult {
  threshold: number | null;
  executionProvider: 'webgpu' | 'wasm';
  ms: number;
}

export interface OnnxScanApi {
  load: [{ files: File[]; preference: ExecutionPreference }, OnnxDetectorSummary];
  scan: [{ code: string }, OnnxScanResult];
  unload: [Record<never, never>, void];
}

export type OnnxScanRequestType = keyof OnnxScanApi;
export type OnnxScanRequest = {
  [K in OnnxScanRequestType]: { type: K } & OnnxScanApi[K][0];
}[OnnxScanRequestType];

export interface OnnxScanProgress {
  stage: 'read' | 'session' | 'scan';
  done: number;
  total: number;
  /** A line for the panel, e.g. "reading model.onnx". */
  label: string;
}

export type OnnxScanMessage =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: SerializedError }
  | { id: 0; progress: OnnxScanProgress };

export class OnnxScanClient {
  private readonly channel: WorkerChannel<OnnxScanProgress>;

  constructor() {
    const worker = new Worker(new URL('./onnx-scan.worker.ts', import.meta.url), {
      type: 'module',
      name: 'onnx-scan',
    });
    this.channel = new WorkerChannel(worker, 'ONNX scan worker', (message) =>
      'progress' in message ? (message as { progress: OnnxScanProgress }).progress : undefined,
    );
  }

  request<T extends OnnxScanRequestType>(
    request: Extract<OnnxScanRequest, { type: T }>,
  ): Promise<OnnxScanApi[T][1]> {
    return this.channel.request<OnnxScanApi[T][1]>(request);
  }

  onProgress(listener: (progress: OnnxScanProgress) => void): () => void {
    return this.channel.listen(listener);
  }
}

let shared: OnnxScanClient | undefined;

/** One worker per page, started on first use (its WASM is only fetched when a detector is loaded). */
export function onnxScanClient(): OnnxScanClient {
  shared ??= new OnnxScanClient();
  return shared;
}
