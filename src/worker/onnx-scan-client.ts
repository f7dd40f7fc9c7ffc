/**
 * The page's side of the ONNX scan worker (onnx-scan.worker.ts): an exported detector run by
 * onnxruntime-web, on WebGPU where the browser has it and on WASM (CPU) otherwise. Typed
 * request/response pairs plus progress events, as with the engine worker.
 */
import { EngineError } from './client.ts';
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
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (value: never) => void; reject: (error: Error) => void }
  >();
  private readonly listeners = new Set<(progress: OnnxScanProgress) => void>();

  constructor() {
    this.worker = new Worker(new URL('./onnx-scan.worker.ts', import.meta.url), {
      type: 'module',
      name: 'onnx-scan',
    });
    this.worker.onmessage = (event: MessageEvent<OnnxScanMessage>) => {
      const message = event.data;
      if ('progress' in message) {
        for (const listener of this.listeners) listener(message.progress);
        return;
      }
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.result as never);
      else waiter.reject(new EngineError(message.error));
    };
    this.worker.onerror = (event) => {
      const error = new EngineError({
        code: 'internal',
        message: `The ONNX scan worker failed: ${event.message}`,
        hint: 'Reload the page; if it persists, report it.',
      });
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
  }

  request<T extends OnnxScanRequestType>(
    request: Extract<OnnxScanRequest, { type: T }>,
  ): Promise<OnnxScanApi[T][1]> {
    const id = this.nextId++;
    return new Promise<OnnxScanApi[T][1]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: never) => void, reject });
      this.worker.postMessage({ ...request, id });
    });
  }

  onProgress(listener: (progress: OnnxScanProgress) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

let shared: OnnxScanClient | undefined;

/** One worker per page, started on first use (its WASM is only fetched when a detector is loaded). */
export function onnxScanClient(): OnnxScanClient {
  shared ??= new OnnxScanClient();
  return shared;
}
