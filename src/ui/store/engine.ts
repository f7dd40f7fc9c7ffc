/** The page's one engine worker client, and its errors in the protocol's shape. */
import { EngineClient, EngineError } from '../../worker/client.ts';
import type { EngineEvent, SerializedError } from '../../worker/protocol.ts';

let engine: EngineClient | undefined;
let onEvent: ((event: EngineEvent) => void) | undefined;

/** The worker's unsolicited events go to the store (set once it exists). */
export function handleEngineEvents(handler: (event: EngineEvent) => void): void {
  onEvent = handler;
}

export function engineClient(): EngineClient {
  if (!engine) {
    engine = new EngineClient();
    engine.onEvent((event) => onEvent?.(event));
  }
  return engine;
}

export function asSerialized(error: unknown): SerializedError {
  if (error instanceof EngineError) return error.detail;
  return {
    code: 'internal',
    message: error instanceof Error ? error.message : String(error),
    hint: 'Reload the page; if it keeps happening, report it.',
  };
}
