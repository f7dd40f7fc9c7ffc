/**
 * Byte sources and text decoding with web-standard APIs only (Uint8Array, Blob, ReadableStream,
 * TextDecoder), so the same code runs in a Web Worker and in Node 20.
 */
import { SizeLimitError } from './errors';

export type ByteData = Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array> | string;

/** Large in-memory buffers are handed on in slices of this size (progress granularity, decoder batches). */
export const SLICE = 1 << 20;

export function isBlob(x: unknown): x is Blob {
  return typeof Blob !== 'undefined' && x instanceof Blob;
}

export function isReadableStream(x: unknown): x is ReadableStream<Uint8Array> {
  return typeof x === 'object' && x !== null && typeof (x as ReadableStream).getReader === 'function';
}

/** Total size when it is known without reading. */
export function knownSize(data: ByteData): number | undefined {
  if (typeof data === 'string') return undefined;
  if (data instanceof Uint8Array || data instanceof ArrayBuffer) return data.byteLength;
  if (isBlob(data)) return data.size;
  return undefined;
}

/** The bytes of any source as a stream of chunks. */
export async function* byteChunks(data: ByteData): AsyncGenerator<Uint8Array> {
  if (typeof data === 'string') data = new TextEncoder().encode(data);
  if (data instanceof ArrayBuffer) data = new Uint8Array(data);
  if (data instanceof Uint8Array) {
    for (let i = 0; i < data.length; i += SLICE) yield data.subarray(i, Math.min(data.length, i + SLICE));
    return;
  }
  if (isBlob(data)) {
    for (let i = 0; i < data.size; i += SLICE)
      yield new Uint8Array(await data.slice(i, Math.min(data.size, i + SLICE)).arrayBuffer());
    return;
  }
  const reader = data.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      if (value && value.length) yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/** All bytes of a source in one buffer, refusing sources larger than `limit`. */
export async function readAllBytes(data: ByteData, limit: number, what: string): Promise<Uint8Array> {
  if (data instanceof Uint8Array) {
    if (data.length > limit) throw new SizeLimitError(what, limit);
    return data;
  }
  if (data instanceof ArrayBuffer) return readAllBytes(new Uint8Array(data), limit, what);
  if (isBlob(data)) {
    if (data.size > limit) throw new SizeLimitError(what, limit);
    return new Uint8Array(await data.arrayBuffer());
  }
  return concatChunks(byteChunks(data), limit, what);
}

export async function concatChunks(
  chunks: AsyncIterable<Uint8Array>,
  limit: number,
  what: string,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const c of chunks) {
    total += c.length;
    if (total > limit) throw new SizeLimitError(what, limit);
    parts.push(c);
  }
  return joinBytes(parts, total);
}

export function joinBytes(parts: readonly Uint8Array[], total?: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total ?? parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Streaming text decoder: UTF-8 by default (a UTF-8 BOM is dropped), UTF-16 when the bytes start
 * with a UTF-16 BOM. Invalid bytes become U+FFFD and are counted, never fatal.
 */
export class TextStream {
  private decoder: InstanceType<typeof TextDecoder> | null = null;
  /** Number of U+FFFD characters in the decoded text (invalid bytes, or literal U+FFFD in the source). */
  replacements = 0;
  encoding = 'utf-8';

  decode(chunk: Uint8Array, final = false): string {
    if (this.decoder === null) {
      if (chunk.length >= 2 && chunk[0] === 0xff && chunk[1] === 0xfe) this.encoding = 'utf-16le';
      else if (chunk.length >= 2 && chunk[0] === 0xfe && chunk[1] === 0xff) this.encoding = 'utf-16be';
      this.decoder = new TextDecoder(this.encoding, { fatal: false });
    }
    const text = this.decoder.decode(chunk, { stream: !final });
    if (text.indexOf('\uFFFD') >= 0) for (const ch of text) if (ch === '\uFFFD') this.replacements++;
    return text;
  }

  end(): string {
    return this.decoder ? this.decode(new Uint8Array(0), true) : '';
  }
}

/** Decode a whole buffer (a file from an archive/folder) with replacement; returns the count too. */
export function decodeBytes(bytes: Uint8Array): { text: string; replacements: number } {
  const t = new TextStream();
  const text = t.decode(bytes, true);
  return { text, replacements: t.replacements };
}

/** Sniff the format from the first bytes. */
export function sniffFormat(
  head: Uint8Array,
): 'parquet' | 'zip' | 'json' | 'jsonl' | 'csv' | 'tsv' | 'java' | undefined {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x41 && head[2] === 0x52 && head[3] === 0x31)
    return 'parquet';
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5))
    return 'zip';
  const text = new TextDecoder('utf-8', { fatal: false }).decode(head.subarray(0, 64 * 1024));
  const trimmed = text.replace(/^\uFEFF/, '').trimStart();
  if (trimmed.startsWith('[')) return 'json';
  if (trimmed.startsWith('{')) return 'jsonl';
  if (
    /^(package|import|public|class|@|\/\*|\/\/)\s*/.test(trimmed) &&
    /\b(class|interface|enum|record)\b/.test(text)
  )
    return 'java';
  const firstLine = trimmed.split(/\r?\n/, 1)[0] ?? '';
  const tabs = firstLine.split('\t').length - 1;
  const commas = firstLine.split(',').length - 1;
  if (tabs > 0 && tabs >= commas) return 'tsv';
  if (commas > 0) return 'csv';
  return undefined;
}
