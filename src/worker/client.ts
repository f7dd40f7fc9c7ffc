import type {
  EngineEvent,
  EngineRequest,
  EngineResponses,
  RequestMessage,
  RequestType,
  ResponseMessage,
  SerializedError,
} from './protocol.ts';

/** An error that crossed the worker boundary, keeping its code and hint. */
export class EngineError extends Error {
  constructor(readonly detail: SerializedError) {
    super(detail.message);
    this.name = 'EngineError';
  }
}

/** Talks to the engine worker: typed request/response pairs plus a stream of events. */
export class EngineClient {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (value: never) => void; reject: (error: Error) => void }
  >();
  private readonly listeners = new Set<(event: EngineEvent) => void>();

  constructor() {
    this.worker = new Worker(new URL('./engine.worker.ts', import.meta.url), {
      type: 'module',
      name: 'engine',
    });
    this.worker.onmessage = (event: MessageEvent<ResponseMessage>) => {
      const message = event.data;
      if ('event' in message) {
        for (const listener of this.listeners) listener(message.event);
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
        message: `The engine worker failed: ${event.message}`,
        hint: 'Reload the page; if it persists, report it.',
      });
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
  }

  request<T extends RequestType>(request: Extract<EngineRequest, { type: T }>): Promise<EngineResponses[T]> {
    const id = this.nextId++;
    return new Promise<EngineResponses[T]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: never) => void, reject });
      this.worker.postMessage({ ...request, id } as RequestMessage);
    });
  }

  /** Subscribes to progress and run events; returns the unsubscribe function. */
  onEvent(listener: (event: EngineEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
