/**
 * The typed protocol between the page (UI) and the engine worker. The UI never touches the GPU;
 * everything it knows about the adapter or a kernel arrives through these messages.
 */
import type { AdapterSummary } from '../engine/gpu/context.ts';
import type { VulnLabErrorCode } from '../engine/errors.ts';

export type { AdapterSummary };

export interface SerializedError {
  code: VulnLabErrorCode | 'internal';
  message: string;
  hint: string;
}

export type EngineRequest = { type: 'probe' } | { type: 'selftest' };

export interface SelftestResult {
  /** The kernel that ran, e.g. "matmul 33x17x65". */
  kernel: string;
  maxRelError: number;
  ok: boolean;
  ms: number;
}

export interface EngineResponses {
  probe: AdapterSummary;
  selftest: SelftestResult;
}

export type RequestMessage = EngineRequest & { id: number };

export type ResponseMessage =
  | { id: number; ok: true; result: EngineResponses[EngineRequest['type']] }
  | { id: number; ok: false; error: SerializedError };
