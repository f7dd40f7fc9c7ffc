/**
 * One import API for every dataset shape: `importDataset(source, options)`.
 *
 * Sources: bytes / Blob / ReadableStream / string with a file name; a URL (streamed with fetch;
 * Parquet read with HTTP Range requests, so only the footer and the mapped columns travel); or a
 * list of files (a folder, e.g. from a directory picker). Formats, detected by extension and then
 * by content: JSONL, JSON array (or an object of arrays keyed by split), CSV/TSV, Parquet, zip, Java.
 *
 * Text formats are parsed while streaming (memory bounded by the longest row when `collect` is
 * false). Rows that do not parse are reported with their line numbers and skipped; the import fails
 * with a `DataError` only when nothing usable is left, and with a `SizeLimitError` when uncompressed
 * data exceeds `maxUncompressedBytes` (zip bombs).
 */
import { Unzip, UnzipInflate, gunzipSync } from 'fflate';
import {
  asyncBufferFromUrl,
  cachedAsyncBuffer,
  parquetMetadataAsync,
  parquetReadObjects,
  parquetSchema,
  type AsyncBuffer,
  type FileMetaData,
} from 'hyparquet';
import {
  byteChunks,
  decodeBytes,
  isBlob,
  joinBytes,
  knownSize,
  readAllBytes,
  sniffFormat,
  TextStream,
  type ByteData,
} from './bytes';
import { DataError, SizeLimitError } from './errors';
import {
  detectFieldMapping,
  makeLabelParser,
  normalizeSplit,
  rowToRecord,
  type FieldMapping,
  type LabelValues,
} from './fields';
import { cweFromPath, extractJavaMethods, julietLabel, labelFromPath, scrubGiveaways } from './java';
import { CsvParser, JsonArrayParser, JsonlParser, type TextParser } from './text-formats';
import type { DataRecord, DatasetFormat, ImportIssue, ImportIssueKind, Label } from './types';

export interface DatasetFile {
  /** Path relative to the folder/archive root, `/`-separated (directory names can carry the label). */
  path: string;
  data: ByteData;
}

export type DatasetSource =
  | { name: string; data: ByteData }
  | { url: string | URL; name?: string }
  | { files: readonly DatasetFile[]; name?: string };

export type JavaLabelling = 'auto' | 'directory' | 'juliet';

export interface ImportProgress {
  bytesRead: number;
  /** When known (a Blob, bytes, a response with Content-Length, a Parquet file). */
  totalBytes?: number;
  records: number;
  file?: string;
}

export interface ImportOptions {
  /** Skip detection. */
  format?: DatasetFormat;
  /** Explicit column names, overriding auto-detection field by field. */
  fields?: Partial<FieldMapping>;
  /** Extra label spellings. */
  labelValues?: LabelValues;
  /** How `.java` files are labelled: by directory name, by Juliet method names, or whichever applies (default). */
  javaLabels?: JavaLabelling;
  /** Remove Juliet giveaways (comments, `bad`/`good*` names). Default: on for Juliet labelling, off otherwise. */
  scrubGiveaways?: boolean;
  /** Cap on uncompressed bytes (archive contents, whole-file reads). Default 1 GiB. */
  maxUncompressedBytes?: number;
  /** Issues kept in the result (all are counted). Default 500. */
  maxIssues?: number;
  /** Keep records in the result (default true). Set false and use `onRecord` to stream huge files. */
  collect?: boolean;
  onRecord?: (record: DataRecord) => void;
  onProgress?: (progress: ImportProgress) => void;
  /** Used for URL sources (tests inject one; default global fetch). */
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

export interface ImportResult {
  /** Empty when `collect` is false. */
  records: DataRecord[];
  recordCount: number;
  format: DatasetFormat;
  /** The mapping used (of the first tabular file). */
  fieldMapping?: Partial<FieldMapping>;
  /** How `.java` methods were labelled, when there were any. */
  javaLabelling?: 'directory' | 'juliet';
  issues: ImportIssue[];
  issueCounts: Partial<Record<ImportIssueKind, number>>;
  /** Java files java-parser rejected, with its message. Never silently dropped. */
  parseFailures: { file: string; message: string }[];
  /** Bytes read from the source (compressed bytes for archives; fetched bytes for Range reads). */
  bytesRead: number;
  /** U+FFFD characters produced while decoding (invalid UTF-8). */
  replacementChars: number;
  /** Files read (1 for a single file). */
  files: number;
}

export const DEFAULT_MAX_UNCOMPRESSED = 1 << 30;
const DATA_EXTENSIONS: Record<string, DatasetFormat> = {
  jsonl: 'jsonl',
  ndjson: 'jsonl',
  json: 'json',
  csv: 'csv',
  tsv: 'tsv',
  tab: 'tsv',
  parquet: 'parquet',
  pq: 'parquet',
  zip: 'zip',
  java: 'java',
};

export function formatFromName(name: string): DatasetFormat | undefined {
  const base = name.split(/[?#]/)[0];
  const m = /\.([A-Za-z0-9]+)$/.exec(base);
  return m ? DATA_EXTENSIONS[m[1].toLowerCase()] : undefined;
}

/** Import a dataset from any supported source. */
export async function importDataset(
  source: DatasetSource,
  options: ImportOptions = {},
): Promise<ImportResult> {
  const ctx = new ImportContext(options);
  let format: DatasetFormat;
  let what: string;
  if ('files' in source) {
    what = source.name ?? 'the folder';
    format = 'java';
    const data = source.files.filter((f) => formatFromName(f.path) !== 'java');
    const java = source.files.filter((f) => formatFromName(f.path) === 'java');
    const javaTexts: { path: string; bytes: Uint8Array }[] = [];
    for (const f of java) {
      const bytes = await readAllBytes(f.data, ctx.remainingBudget(), f.path);
      ctx.countUncompressed(bytes.length, f.path);
      ctx.bytesRead += bytes.length;
      javaTexts.push({ path: f.path, bytes });
      ctx.progress(f.path);
    }
    for (const f of data) {
      const fmt = await importFile(f.path, f.data, ctx, knownSize(f.data));
      if (fmt && java.length === 0) format = fmt;
    }
    ctx.importJava(javaTexts);
    ctx.files = source.files.length;
  } else if ('url' in source) {
    const url = String(source.url);
    const name =
      source.name ?? decodeURIComponent(new URL(url, 'http://x/').pathname.split('/').pop() ?? url);
    what = name;
    format = await importUrl(url, name, ctx);
  } else {
    what = source.name;
    format = (await importFile(source.name, source.data, ctx, knownSize(source.data))) ?? 'jsonl';
  }
  return ctx.finish(format, what);
}

class ImportContext {
  readonly records: DataRecord[] = [];
  recordCount = 0;
  readonly issues: ImportIssue[] = [];
  readonly issueCounts: Partial<Record<ImportIssueKind, number>> = {};
  readonly parseFailures: { file: string; message: string }[] = [];
  bytesRead = 0;
  totalBytes: number | undefined;
  replacementChars = 0;
  files = 0;
  uncompressed = 0;
  rowsSeen = 0;
  emptyFiles = 0;
  fieldMapping: Partial<FieldMapping> | undefined;
  javaLabelling: 'directory' | 'juliet' | undefined;
  private lastProgress = 0;
  readonly parseLabel: ReturnType<typeof makeLabelParser>;
  readonly maxBytes: number;
  readonly maxIssues: number;

  constructor(readonly options: ImportOptions) {
    this.parseLabel = makeLabelParser(options.labelValues);
    this.maxBytes = options.maxUncompressedBytes ?? DEFAULT_MAX_UNCOMPRESSED;
    this.maxIssues = options.maxIssues ?? 500;
  }

  issue(kind: ImportIssueKind, message: string, file?: string, line?: number): void {
    this.issueCounts[kind] = (this.issueCounts[kind] ?? 0) + 1;
    if (this.issues.length < this.maxIssues) {
      const i: ImportIssue = { kind, message };
      if (file !== undefined) i.file = file;
      if (line !== undefined) i.line = line;
      this.issues.push(i);
    }
  }

  remainingBudget(): number {
    return Math.max(0, this.maxBytes - this.uncompressed);
  }

  countUncompressed(n: number, what: string): void {
    this.uncompressed += n;
    if (this.uncompressed > this.maxBytes) throw new SizeLimitError(what, this.maxBytes);
  }

  checkAbort(): void {
    this.options.signal?.throwIfAborted();
  }

  progress(file?: string, force = false): void {
    const cb = this.options.onProgress;
    if (!cb) return;
    if (!force && this.bytesRead - this.lastProgress < 1 << 20) return;
    this.lastProgress = this.bytesRead;
    const p: ImportProgress = { bytesRead: this.bytesRead, records: this.recordCount };
    if (this.totalBytes !== undefined) p.totalBytes = this.totalBytes;
    if (file !== undefined) p.file = file;
    cb(p);
  }

  add(record: DataRecord): void {
    this.recordCount++;
    if (this.options.collect !== false) this.records.push(record);
    this.options.onRecord?.(record);
  }

  /** A row sink for one tabular file: maps fields (detected on the first row or the header). */
  rowSink(file: string | undefined, columns?: readonly string[], splitOverride?: DataRecord['split']) {
    let mapping: Partial<FieldMapping> | undefined;
    const encodingLines: number[] = [];
    const setMapping = (cols: readonly string[]) => {
      const { mapping: m, missing } = detectFieldMapping(cols, this.options.fields);
      if (missing.length) {
        const override = this.options.fields;
        throw new DataError(
          `${file ?? 'The dataset'} has no ${missing.join(' or ')} column (columns: ${cols.slice(0, 30).join(', ') || 'none'}).`,
          override?.code || override?.label
            ? `The column named in the field override (${[override.code, override.label].filter(Boolean).join(', ')}) was not found; pick one of the listed columns.`
            : 'Name the columns with the field mapping (code: one of code/func/source/function/method; label: target/label/vulnerable/is_vulnerable/bug), or rename them in the file.',
          { issues: this.issues.slice() },
        );
      }
      mapping = m;
      this.fieldMapping ??= m;
    };
    if (columns) setMapping(columns);
    // Schema-less rows (JSON): optional fields may first appear in a later row.
    const seenKeys = columns ? undefined : new Set<string>();
    const sink = (row: Record<string, unknown>, line: number) => {
      this.rowsSeen++;
      if (seenKeys) {
        let fresh = false;
        for (const k in row)
          if (!seenKeys.has(k)) {
            seenKeys.add(k);
            fresh = true;
          }
        if (!mapping) setMapping([...seenKeys]);
        else if (fresh) {
          const again = detectFieldMapping([...seenKeys], this.options.fields).mapping;
          mapping = { ...again, code: mapping.code, label: mapping.label };
        }
      }
      const r = rowToRecord(row, mapping!, this.parseLabel);
      if (!r.ok) {
        this.issue(r.kind, r.message, file, line);
        return;
      }
      for (const w of r.warnings) this.issue('bad-value', w, file, line);
      if (splitOverride && !r.record.split) r.record.split = splitOverride;
      if (r.record.code.includes('\uFFFD') && encodingLines.length < 10) encodingLines.push(line);
      this.add(r.record);
    };
    return { sink, encodingLines };
  }

  reportEncoding(file: string | undefined, replacements: number, lines: number[]): void {
    if (replacements === 0) return;
    this.replacementChars += replacements;
    this.issue(
      'encoding',
      `${replacements} invalid UTF-8 byte sequence(s) were decoded as U+FFFD` +
        (lines.length ? ` (first in the code of line(s) ${lines.join(', ')})` : ''),
      file,
      lines[0],
    );
  }

  /** Label, extract and add the methods of `.java` files. */
  importJava(files: { path: string; bytes: Uint8Array }[]): void {
    if (files.length === 0) return;
    const requested = this.options.javaLabels ?? 'auto';
    const mode: 'directory' | 'juliet' =
      requested === 'auto'
        ? files.some((f) => labelFromPath(f.path) !== undefined)
          ? 'directory'
          : 'juliet'
        : requested;
    this.javaLabelling = mode;
    const scrub = this.options.scrubGiveaways ?? mode === 'juliet';
    for (const f of files) {
      this.checkAbort();
      const { text, replacements } = decodeBytes(f.bytes);
      this.reportEncoding(f.path, replacements, []);
      if (text.trim() === '') {
        this.emptyFiles++;
        this.issue('empty', 'empty file', f.path);
        continue;
      }
      const result = extractJavaMethods(text);
      if (!result.ok) {
        this.parseFailures.push({ file: f.path, message: result.message });
        this.issue('parse-failure', result.message, f.path);
        continue;
      }
      const dirLabel = labelFromPath(f.path);
      let unlabelled: string[] = [];
      for (const m of result.methods) {
        const label: Label | undefined = mode === 'directory' ? dirLabel : julietLabel(m.name);
        if (label === undefined) {
          unlabelled.push(m.name);
          continue;
        }
        const record: DataRecord = {
          code: scrub ? scrubGiveaways(m.code) : m.code,
          label,
          file: f.path,
          id: `${f.path}#${m.name}:${m.line}`,
        };
        const cwe = cweFromPath(f.path);
        if (cwe) record.cwe = cwe;
        const split = f.path
          .split('/')
          .map((s) => normalizeSplit(s))
          .find((s) => s);
        if (split) record.split = split;
        this.add(record);
      }
      if (result.methods.length === 0)
        this.issue('unlabelled', 'no methods with a body in this file', f.path);
      else if (unlabelled.length) {
        if (unlabelled.length > 8) unlabelled = [...unlabelled.slice(0, 8), '…'];
        this.issue(
          'unlabelled',
          mode === 'directory'
            ? `no directory named vulnerable/safe/… above this file; ${result.methods.length} method(s) skipped`
            : `method(s) not named bad*/good* skipped: ${unlabelled.join(', ')}`,
          f.path,
        );
      }
    }
  }

  finish(format: DatasetFormat, what: string): ImportResult {
    if (this.recordCount === 0) {
      const counts = Object.entries(this.issueCounts)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ');
      const empty = this.emptyFiles > 0 && this.rowsSeen === 0 && this.parseFailures.length === 0;
      throw new DataError(
        empty ? `${what} is empty.` : `${what} contains no usable records${counts ? ` (${counts})` : ''}.`,
        empty
          ? 'Choose a file with one labelled function per row (JSONL, CSV, Parquet …) or a folder of .java files.'
          : 'See the listed issues (with line numbers); fix the field mapping or the rows and import again.',
        { issues: this.issues.slice() },
      );
    }
    const result: ImportResult = {
      records: this.records,
      recordCount: this.recordCount,
      format,
      issues: this.issues,
      issueCounts: this.issueCounts,
      parseFailures: this.parseFailures,
      bytesRead: this.bytesRead,
      replacementChars: this.replacementChars,
      files: Math.max(1, this.files),
    };
    if (this.fieldMapping) result.fieldMapping = this.fieldMapping;
    if (this.javaLabelling) result.javaLabelling = this.javaLabelling;
    this.progress(undefined, true);
    return result;
  }
}

/** Wrap a chunk source so that bytes are counted and progress is reported. */
async function* counted(chunks: AsyncIterable<Uint8Array>, ctx: ImportContext, file: string) {
  for await (const c of chunks) {
    ctx.checkAbort();
    ctx.bytesRead += c.length;
    yield c;
    ctx.progress(file);
  }
}

/** The first chunk (for sniffing) and an iterator over all chunks including it. */
async function peek(
  chunks: AsyncIterable<Uint8Array>,
): Promise<{ head: Uint8Array; all: AsyncIterable<Uint8Array> }> {
  const it = chunks[Symbol.asyncIterator]();
  const first = await it.next();
  const head = first.done ? new Uint8Array(0) : first.value;
  async function* all() {
    if (!first.done) yield first.value;
    for (;;) {
      const n = await it.next();
      if (n.done) return;
      yield n.value;
    }
  }
  return { head, all: all() };
}

async function importFile(
  name: string,
  data: ByteData,
  ctx: ImportContext,
  size: number | undefined,
  top = true,
): Promise<DatasetFormat | undefined> {
  ctx.files++;
  if (top && size !== undefined) ctx.totalBytes = size;
  let format = top ? (ctx.options.format ?? formatFromName(name)) : formatFromName(name);
  if (format === 'parquet' && (data instanceof Uint8Array || data instanceof ArrayBuffer || isBlob(data)))
    return importParquet(blobBuffer(data, ctx, top), name, ctx);
  const { head, all } = await peek(byteChunks(data));
  if (head.length === 0) {
    ctx.emptyFiles++;
    ctx.issue('empty', 'empty file', name);
    return format;
  }
  format ??= sniffFormat(head);
  if (format === undefined) {
    ctx.issue(
      'skipped-file',
      'not a recognised dataset format (JSONL, JSON, CSV, TSV, Parquet, zip, Java)',
      name,
    );
    return undefined;
  }
  const chunks = counted(all, ctx, name);
  switch (format) {
    case 'parquet': {
      const bytes = await concatLimited(chunks, ctx, name);
      return importParquet(blobBuffer(bytes, ctx, false), name, ctx);
    }
    case 'zip':
      await importZip(chunks, name, ctx);
      return 'zip';
    case 'java': {
      const bytes = await concatLimited(chunks, ctx, name);
      ctx.importJava([{ path: name, bytes }]);
      return 'java';
    }
    default:
      await importText(format, chunks, name, ctx, !top);
      return format;
  }
}

async function concatLimited(chunks: AsyncIterable<Uint8Array>, ctx: ImportContext, name: string) {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const c of chunks) {
    ctx.countUncompressed(c.length, name);
    total += c.length;
    parts.push(c);
  }
  return joinBytes(parts, total);
}

async function importText(
  format: 'jsonl' | 'json' | 'csv' | 'tsv',
  chunks: AsyncIterable<Uint8Array>,
  name: string,
  ctx: ImportContext,
  nested: boolean,
): Promise<void> {
  const file = nested || ctx.files > 1 ? name : undefined;
  const decoder = new TextStream();
  const malformed = (line: number, message: string) => ctx.issue('malformed', message, file, line);
  let parser: TextParser | undefined;
  let sink: ReturnType<ImportContext['rowSink']> | undefined;
  let sawText = false;
  let pendingObject: string[] | undefined; // a .json file that starts with '{'

  const makeParser = (firstText: string): TextParser | undefined => {
    const trimmed = firstText.replace(/^\uFEFF/, '').trimStart();
    if (format === 'json' && trimmed.startsWith('{')) {
      pendingObject = [];
      return undefined;
    }
    if (format === 'csv' || format === 'tsv') {
      const headerLine = trimmed.split('\n', 1)[0];
      const delimiter =
        format === 'tsv' ? '\t' : headerLine.split(';').length > headerLine.split(',').length ? ';' : ',';
      return new CsvParser(
        delimiter,
        (row, line) => sink!.sink(row, line),
        malformed,
        (columns) => {
          sink = ctx.rowSink(file, columns);
        },
      );
    }
    sink = ctx.rowSink(file);
    if (format === 'json' && trimmed.startsWith('['))
      return new JsonArrayParser((row, line) => sink!.sink(row, line), malformed);
    return new JsonlParser((row, line) => sink!.sink(row, line), malformed);
  };

  const feed = (text: string) => {
    if (!text) return;
    if (pendingObject) {
      pendingObject.push(text);
      return;
    }
    if (!parser) {
      if (!sawText && text.trim() === '') return;
      sawText = true;
      parser = makeParser(text);
      if (pendingObject) {
        (pendingObject as string[]).push(text);
        return;
      }
    }
    parser!.push(text);
  };

  for await (const c of chunks) {
    if (pendingObject) ctx.countUncompressed(c.length, name);
    feed(decoder.decode(c));
  }
  feed(decoder.end());
  if (pendingObject) importJsonObject(pendingObject.join(''), file ?? name, ctx, file);
  else if (parser) parser.end();
  else {
    ctx.emptyFiles++;
    ctx.issue('empty', 'empty file', file ?? name);
  }
  ctx.reportEncoding(file, decoder.replacements, sink?.encodingLines ?? []);
}

/** A `.json` file holding an object: `{"train": [...], "test": [...]}`, `{"data": [...]}`, or one record. */
function importJsonObject(text: string, name: string, ctx: ImportContext, file: string | undefined): void {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    // Not one JSON document: maybe JSON Lines with a .json extension.
    const sink = ctx.rowSink(file);
    const p = new JsonlParser(sink.sink, (line, message) => ctx.issue('malformed', message, file, line));
    p.push(text);
    p.end();
    return;
  }
  const obj = v as Record<string, unknown>;
  const arrays = Object.entries(obj).filter(([, x]) => Array.isArray(x)) as [string, unknown[]][];
  if (arrays.length === 0) {
    ctx.rowSink(file).sink(obj, 1);
    return;
  }
  for (const [key, rows] of arrays) {
    const split = normalizeSplit(key) ?? undefined;
    const sink = ctx.rowSink(file, undefined, split);
    rows.forEach((row, k) => {
      if (typeof row === 'object' && row !== null && !Array.isArray(row))
        sink.sink(row as Record<string, unknown>, k + 1);
      else ctx.issue('malformed', `element ${k + 1} of "${key}" is not an object`, file ?? name);
    });
  }
}

function blobBuffer(data: Uint8Array | ArrayBuffer | Blob, ctx: ImportContext, count = true): AsyncBuffer {
  if (isBlob(data)) {
    const blob = data;
    return {
      byteLength: blob.size,
      slice: async (start, end) => {
        const buf = await blob.slice(start, end).arrayBuffer();
        if (count) ctx.bytesRead += buf.byteLength;
        return buf;
      },
    };
  }
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
  if (count) ctx.bytesRead += bytes.length;
  return {
    byteLength: bytes.length,
    slice: (start, end) => bytes.slice(start, end).buffer as ArrayBuffer,
  };
}

const PARQUET_COMPRESSORS = {
  GZIP: (input: Uint8Array) => gunzipSync(input),
};

async function importParquet(
  file: AsyncBuffer,
  name: string,
  ctx: ImportContext,
  initialFetchSize?: number,
): Promise<'parquet'> {
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(file, initialFetchSize ? { initialFetchSize } : {});
  } catch (e) {
    throw new DataError(
      `${name} is not a readable Parquet file: ${e instanceof Error ? e.message : String(e)}`,
      'Check that the file is complete (not an HTML error page or a Git LFS pointer).',
      { cause: e },
    );
  }
  const columns = parquetSchema(metadata).children.map((c) => c.element.name);
  const file0 = ctx.files > 1 ? name : undefined;
  const sink = ctx.rowSink(file0, columns);
  const { mapping } = detectFieldMapping(columns, ctx.options.fields);
  const wanted = [...new Set(Object.values(mapping).filter((c): c is string => typeof c === 'string'))];
  ctx.totalBytes ??= file.byteLength;
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    ctx.checkAbort();
    const rowEnd = rowStart + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({
        file,
        metadata,
        columns: wanted,
        rowStart,
        rowEnd,
        compressors: PARQUET_COMPRESSORS,
      });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new DataError(
        `Could not read rows ${rowStart + 1}–${rowEnd} of ${name}: ${msg}`,
        /compression codec/.test(msg)
          ? 'This Parquet file uses a codec the lab cannot decode; re-save it with SNAPPY, GZIP or no compression.'
          : 'The file may be truncated or corrupt.',
        { cause: e, issues: ctx.issues.slice() },
      );
    }
    rows.forEach((row, k) => sink.sink(row, rowStart + k + 1));
    rowStart = rowEnd;
    ctx.progress(name, true);
  }
  if (metadata.row_groups.length === 0 || Number(metadata.num_rows) === 0) {
    ctx.emptyFiles++;
    ctx.issue('empty', 'the Parquet file has no rows', name);
  }
  return 'parquet';
}

/** Streamed zip: entries are inflated in small steps so the size cap stops a bomb before memory does. */
async function importZip(
  chunks: AsyncIterable<Uint8Array>,
  zipName: string,
  ctx: ImportContext,
): Promise<void> {
  const done: { path: string; bytes: Uint8Array }[] = [];
  let failure: unknown;
  const unzip = new Unzip((entry) => {
    const path = entry.name;
    if (path.endsWith('/')) return;
    const base = path.split('/').pop() ?? path;
    if (path.startsWith('__MACOSX/') || base.startsWith('.')) return;
    const fmt = formatFromName(path);
    if (!fmt) {
      ctx.issue('skipped-file', 'not a dataset or .java file', path);
      return;
    }
    if (entry.compression !== 0 && entry.compression !== 8) {
      ctx.issue('skipped-file', `unsupported zip compression method ${entry.compression}`, path);
      return;
    }
    const parts: Uint8Array[] = [];
    let size = 0;
    entry.ondata = (err, chunk, final) => {
      if (failure) return;
      if (err) {
        ctx.issue('malformed', `corrupt archive entry: ${err.message}`, path);
        return;
      }
      try {
        ctx.countUncompressed(chunk.length, `${zipName} (at ${path})`);
      } catch (e) {
        failure = e;
        entry.terminate();
        return;
      }
      size += chunk.length;
      if (chunk.length) parts.push(chunk);
      if (final) done.push({ path, bytes: joinBytes(parts, size) });
    };
    entry.start();
  });
  unzip.register(UnzipInflate);
  const java: { path: string; bytes: Uint8Array }[] = [];
  const drain = async () => {
    while (done.length) {
      const f = done.shift()!;
      ctx.files++;
      if (formatFromName(f.path) === 'java') java.push(f);
      else await importFile(f.path, f.bytes, ctx, undefined, false);
    }
  };
  const STEP = 16 * 1024; // at most ~16 MiB of output per step even at deflate's 1032:1 ratio
  let any = false;
  for await (const c of chunks) {
    any = true;
    for (let i = 0; i < c.length; i += STEP) {
      try {
        unzip.push(c.subarray(i, Math.min(c.length, i + STEP)), false);
      } catch (e) {
        failure ??= e;
      }
      if (failure) break;
    }
    if (failure) break;
    await drain();
  }
  if (!failure && any) {
    try {
      unzip.push(new Uint8Array(0), true);
    } catch (e) {
      failure = e;
    }
  }
  if (failure) {
    if (failure instanceof DataError) throw failure;
    throw new DataError(
      `${zipName} is not a readable zip archive: ${failure instanceof Error ? failure.message : String(failure)}`,
      'Re-create the archive with a standard zip tool (deflate or stored entries).',
      { cause: failure },
    );
  }
  await drain();
  ctx.importJava(java);
}

async function importUrl(url: string, name: string, ctx: ImportContext): Promise<DatasetFormat> {
  const doFetch = ctx.options.fetch ?? fetch;
  const format = ctx.options.format ?? formatFromName(name);
  if (format === 'parquet') return importParquetUrl(url, name, ctx, doFetch);
  let response: Response;
  try {
    response = await doFetch(url, ctx.options.signal ? { signal: ctx.options.signal } : undefined);
  } catch (e) {
    throw new DataError(
      `Could not fetch ${url}: ${e instanceof Error ? e.message : String(e)}`,
      'Check the address and your connection (and CORS for other sites).',
      { cause: e },
    );
  }
  if (!response.ok || !response.body)
    throw new DataError(
      `Fetching ${url} failed with HTTP ${response.status}.`,
      'Check the address; private datasets need a token.',
    );
  const length = Number(response.headers.get('content-length'));
  if (format === undefined) {
    // Sniff the first bytes; Parquet switches to Range requests.
    const { head, all } = await peek(byteChunks(response.body));
    if (sniffFormat(head) === 'parquet') {
      await response.body.cancel().catch(() => undefined);
      return importParquetUrl(
        url,
        name,
        ctx,
        doFetch,
        Number.isFinite(length) && length > 0 ? length : undefined,
      );
    }
    return (
      (await importFile(
        name,
        readableFrom(all),
        ctx,
        Number.isFinite(length) && length > 0 ? length : undefined,
      )) ?? 'jsonl'
    );
  }
  return (
    (await importFile(
      name,
      response.body,
      ctx,
      Number.isFinite(length) && length > 0 ? length : undefined,
    )) ?? format
  );
}

function readableFrom(chunks: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const it = chunks[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const n = await it.next();
      if (n.done) controller.close();
      else controller.enqueue(n.value);
    },
  });
}

async function importParquetUrl(
  url: string,
  name: string,
  ctx: ImportContext,
  doFetch: typeof fetch,
  byteLength?: number,
): Promise<'parquet'> {
  ctx.files++;
  let remote: AsyncBuffer;
  try {
    const opts: Parameters<typeof asyncBufferFromUrl>[0] = { url, fetch: doFetch };
    if (byteLength !== undefined) opts.byteLength = byteLength;
    remote = await asyncBufferFromUrl(opts);
  } catch (e) {
    throw new DataError(
      `Could not open ${url}: ${e instanceof Error ? e.message : String(e)}`,
      'Check the address; the server must answer HEAD and Range requests.',
      { cause: e },
    );
  }
  const counting: AsyncBuffer = {
    byteLength: remote.byteLength,
    slice: async (start, end) => {
      const buf = await remote.slice(start, end);
      ctx.bytesRead += buf.byteLength;
      ctx.progress(name);
      return buf;
    },
  };
  ctx.totalBytes = remote.byteLength;
  // Footers of dataset files are small: fetch 64 KiB first (hyparquet fetches more when needed).
  return importParquet(cachedAsyncBuffer(counting, { minSize: 64 * 1024 }), name, ctx, 64 * 1024);
}
