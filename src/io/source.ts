/**
 * Random-access byte sources: everything that reads a checkpoint goes through `ByteSource`, so the
 * same parser streams from the Hub (HTTP Range), a dropped File (Blob.slice), an in-memory buffer,
 * or a Node file handle (./node-source.ts). Reads return exactly `length` bytes or throw.
 */
import { HubError, ModelFormatError, hubErrorForStatus, networkError } from './errors.ts';

export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /** A name for error messages (file name or URL path). */
  readonly name: string;
  /** Exactly `length` bytes starting at `offset`; throws a typed error if the range is outside the source. */
  read(offset: number, length: number): Promise<Uint8Array>;
  close?(): Promise<void>;
}

export function checkRange(source: { size: number; name: string }, offset: number, length: number): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > source.size
  ) {
    throw new ModelFormatError(
      'truncated',
      source.name,
      `read of ${length} bytes at offset ${offset} goes past the end of the file (${source.size} bytes); the file is truncated or its header is wrong.`,
    );
  }
}

/** Bytes already in memory (tests, small files, generated checkpoints). */
export class MemoryByteSource implements ByteSource {
  readonly size: number;
  constructor(
    private readonly bytes: Uint8Array,
    readonly name = 'memory',
  ) {
    this.size = bytes.byteLength;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    // A copy into a fresh Uint8Array (Node Buffers' slice() would return a view of a shared pool).
    const out = new Uint8Array(length);
    out.set(this.bytes.subarray(offset, offset + length));
    return out;
  }
}

/** A Blob or File (browser file drop, or Node's Blob). Only the requested slice is read. */
export class BlobByteSource implements ByteSource {
  readonly size: number;
  constructor(
    private readonly blob: Blob,
    readonly name = (blob as Blob & { name?: string }).name ?? 'blob',
  ) {
    this.size = blob.size;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    return new Uint8Array(await this.blob.slice(offset, offset + length).arrayBuffer());
  }
}

export interface HttpSourceOptions {
  /** Bearer token; sent only when the request goes to `tokenHost`. */
  token?: string;
  /** Host (e.g. `huggingface.co` or `127.0.0.1:8123`) that may receive the token. */
  tokenHost?: string;
  /** Known size (from the Hub listing); skips the probing request. */
  size?: number;
  fetch?: typeof fetch;
  /** Retries per read after a network failure (resume from the same offset). Default 3. */
  retries?: number;
  /** Delay before the first retry in ms, doubled each time. Default 200. */
  retryDelayMs?: number;
  /** Shown in errors instead of the URL (e.g. the repo id of a gated model). */
  displayName?: string;
}

/**
 * Reads a file over HTTP with `Range: bytes=a-b`. The server must answer 206 with a matching
 * `Content-Range`; a server that ignores ranges would make every tensor read download the whole file,
 * so it is refused with a typed error.
 */
export class HttpByteSource implements ByteSource {
  readonly name: string;
  private constructor(
    readonly url: string,
    readonly size: number,
    private readonly options: HttpSourceOptions,
  ) {
    this.name = options.displayName ?? new URL(url).pathname.split('/').pop() ?? url;
  }

  static async open(url: string, options: HttpSourceOptions = {}): Promise<HttpByteSource> {
    if (options.size !== undefined) return new HttpByteSource(url, options.size, options);
    const probe = new HttpByteSource(url, Number.MAX_SAFE_INTEGER, options);
    const res = await probe.request(0, 0);
    const total = parseContentRange(res.headers.get('content-range'))?.total;
    await res.body?.cancel();
    if (res.status === 416) {
      // Empty file: "bytes */0".
      return new HttpByteSource(url, 0, options);
    }
    if (total === undefined) {
      throw new HubError(
        'range-unsupported',
        url,
        res.status,
        `${url} did not report its size in Content-Range.`,
        'The server must support HTTP Range requests.',
      );
    }
    return new HttpByteSource(url, total, options);
  }

  private headers(offset: number, length: number): Record<string, string> {
    const headers: Record<string, string> = {
      Range: length === 0 ? `bytes=${offset}-${offset}` : `bytes=${offset}-${offset + length - 1}`,
    };
    if (this.options.token && this.options.tokenHost && new URL(this.url).host === this.options.tokenHost) {
      headers.Authorization = `Bearer ${this.options.token}`;
    }
    return headers;
  }

  private async request(offset: number, length: number): Promise<Response> {
    const doFetch = this.options.fetch ?? fetch;
    let res: Response;
    try {
      res = await doFetch(this.url, { headers: this.headers(offset, length) });
    } catch (cause) {
      throw networkError(this.url, cause);
    }
    if (res.status === 416 && offset === 0) return res;
    if (res.status !== 206) {
      await res.body?.cancel();
      if (res.status === 200) {
        throw new HubError(
          'range-unsupported',
          this.url,
          200,
          `${this.url} answered a Range request with the whole file (HTTP 200).`,
          'Serve the model from a server that supports HTTP Range requests (the Hub, Vite, most static servers do).',
        );
      }
      throw hubErrorForStatus(this.url, res.status, this.options.displayName);
    }
    return res;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    if (length === 0) return new Uint8Array(0);
    const retries = this.options.retries ?? 3;
    let delay = this.options.retryDelayMs ?? 200;
    const out = new Uint8Array(length);
    let got = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.request(offset + got, length - got);
        const range = parseContentRange(res.headers.get('content-range'));
        if (!range || range.start !== offset + got) {
          await res.body?.cancel();
          throw new HubError(
            'range-unsupported',
            this.url,
            206,
            `${this.url} answered bytes ${range?.start ?? '?'}-${range?.end ?? '?'} for a request starting at ${offset + got}.`,
            'The server must honour HTTP Range requests.',
          );
        }
        got = await readBodyInto(res, out, got, this.url);
        if (got !== length) {
          throw networkError(this.url, new Error(`body ended after ${got} of ${length} bytes`));
        }
        return out;
      } catch (err) {
        // Network loss and server errors (5xx, e.g. a CDN hiccup) are retried from where the data stopped.
        const retriable =
          err instanceof HubError &&
          (err.reason === 'network' || (err.reason === 'http-error' && (err.status ?? 0) >= 500));
        const resumeAt = (err as { resumeAt?: number }).resumeAt;
        if (resumeAt !== undefined) got = resumeAt;
        if (!retriable || attempt >= retries) throw err;
        await new Promise((r) => setTimeout(r, delay));
        delay *= 2;
      }
    }
  }
}

/** Streams a response body into `out` from `at`; on a broken stream keeps what arrived (for resume). */
async function readBodyInto(res: Response, out: Uint8Array, at: number, url: string): Promise<number> {
  if (!res.body) {
    const buf = new Uint8Array(await res.arrayBuffer());
    const n = Math.min(buf.byteLength, out.byteLength - at);
    out.set(buf.subarray(0, n), at);
    return at + n;
  }
  const reader = res.body.getReader();
  let pos = at;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const n = Math.min(value.byteLength, out.byteLength - pos);
      out.set(value.subarray(0, n), pos);
      pos += n;
      if (n < value.byteLength) {
        await reader.cancel();
        break;
      }
    }
  } catch (cause) {
    // Progress made so far is kept: the caller resumes from `pos` on retry.
    throw Object.assign(networkError(url, cause), { resumeAt: pos });
  }
  return pos;
}

export function parseContentRange(
  header: string | null,
): { start: number; end: number; total: number | undefined } | undefined {
  if (!header) return undefined;
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(header.trim());
  if (m) {
    return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
  }
  const empty = /^bytes\s+\*\/(\d+)$/i.exec(header.trim());
  if (empty) return { start: 0, end: -1, total: Number(empty[1]) };
  return undefined;
}

/** Reads the whole source (for small files: config.json, tokenizer.json, index files). */
export async function readAll(source: ByteSource): Promise<Uint8Array> {
  return source.read(0, source.size);
}

export async function readText(source: ByteSource): Promise<string> {
  return new TextDecoder('utf-8', { fatal: false }).decode(await readAll(source));
}
