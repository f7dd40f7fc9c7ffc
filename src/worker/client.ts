import type {
  EngineEvent,
  EngineRequest,
  EngineResponses,
  RequestMessage,
  RequestType,
  SerializedError,
} from './protocol.ts';

/** An error that crossed the worker boundary, keeping its code and hint. */
export class EngineError extends Error {
  constructor(readonly detail: SerializedError) {
    super(detail.message);
    this.name = 'EngineError';
  }
}

/**
 * Requests and their responses over a worker, matched by id, plus the unsolicited messages the worker
 * posts (progress, run events) handed to listeners. A crashed worker rejects every waiting request.
 */
export class WorkerChannel<Unsolicited> {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (value: never) => void; reject: (error: Error) => void }
  >();
  private readonly listeners = new Set<(message: Unsolicited) => void>();

  constructor(
    private readonly worker: Worker,
    /** Names the worker in the error shown when it crashes. */
    label: string,
    /** The payload of an unsolicited message, or undefined for a response. */
    unsolicited: (message: object) => Unsolicited | undefined,
  ) {
    worker.onmessage = (event: MessageEvent<ChannelResponse>) => {
      const message = event.data;
      const payload = unsolicited(message);
      if (payload !== undefined) {
        for (const listener of this.listeners) listener(payload);
        return;
      }
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.result as never);
      else waiter.reject(new EngineError(message.error));
    };
    worker.onerror = (event) => {
      const error = new EngineError({
        code: 'internal',
        message: `The ${label} failed: ${event.message}`,
        hint: 'Reload the page; if it persists, report it.',
      });
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
  }

  request<Result>(request: object): Promise<Result> {
    const id = this.nextId++;
    return new Promise<Result>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: never) => void, reject });
      this.worker.postMessage({ ...request, id });
    });
  }

  /** Subscribes to the unsolicited messages; returns the unsubscribe function. */
  listen(listener: (message: Unsolicited) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

type ChannelResponse =
  { id: number; ok: true; result: unknown } | { id: number; ok: false; error: SerializedError };

/** Talks to the engine worker: typed request/response pairs plus a stream of events. */
export class EngineClient {
  private readonly channel: WorkerChannel<EngineEvent>;

  constructor() {
    const worker = new Worker(new URL('./engine.worker.ts', import.meta.url), {
      type: 'module',
      name: 'engine',
    });
    this.channel = new WorkerChannel(worker, 'engine worker', (message) =>
      'event' in message ? (message as { event: EngineEvent }).event : undefined,
    );
  }

  request<T extends RequestType>(request: Extract<EngineRequest, { type: T }>): Promise<EngineResponses[T]> {
    return this.channel.request<EngineResponses[T]>(request satisfies Omit<RequestMessage, 'id'>);
  }

  /** Subscribes to progress and run events; returns the unsubscribe function. */
  onEvent(listener: (event: EngineEvent) => void): () => void {
    return this.channel.listen(listener);
  }
}
