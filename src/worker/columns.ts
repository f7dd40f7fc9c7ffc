/**
 * The column names of a dataset's first tabular file, for the Data panel's manual field mapping.
 * Reads only the head of the file (or a Parquet footer); the import itself is src/data's.
 */
import { parquetMetadataAsync, parquetSchema } from 'hyparquet';
import { formatFromName } from '../data/import.ts';
import { CsvParser, JsonArrayParser, JsonlParser, type TextParser } from '../data/text-formats.ts';

/** Bytes read from the head of a text file: enough for a header row or the first records. */
const HEAD_BYTES = 1 << 20;
/** Records whose keys are merged (JSON records may differ in which fields they carry). */
const SAMPLE_ROWS = 20;

export async function tabularColumns(
  files: readonly { name: string; blob: Blob }[],
): Promise<string[] | undefined> {
  for (const { name, blob } of files) {
    const format = formatFromName(name);
    if (!format || format === 'zip' || format === 'java') continue;
    try {
      return format === 'parquet' ? await parquetColumns(blob) : await textColumns(blob, format);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

async function parquetColumns(blob: Blob): Promise<string[]> {
  const metadata = await parquetMetadataAsync({
    byteLength: blob.size,
    slice: (start, end) => blob.slice(start, end).arrayBuffer(),
  });
  return parquetSchema(metadata).children.map((c) => c.element.name);
}

async function textColumns(
  blob: Blob,
  format: 'jsonl' | 'json' | 'csv' | 'tsv',
): Promise<string[] | undefined> {
  const text = (await blob.slice(0, HEAD_BYTES).text()).replace(/^\uFEFF/, '');
  const keys = new Set<string>();
  let header: string[] | undefined;
  let rows = 0;
  const onRow = (row: Record<string, unknown>) => {
    if (rows++ < SAMPLE_ROWS) for (const key of Object.keys(row)) keys.add(key);
  };
  const ignore = () => undefined;
  let parser: TextParser;
  if (format === 'csv' || format === 'tsv') {
    const first = text.trimStart().split('\n', 1)[0];
    // The same delimiter rule as the importer.
    const delimiter = format === 'tsv' ? '\t' : first.split(';').length > first.split(',').length ? ';' : ',';
    parser = new CsvParser(delimiter, onRow, ignore, (columns) => (header ??= columns));
  } else if (format === 'json') {
    if (!text.trimStart().startsWith('[')) return undefined;
    parser = new JsonArrayParser(onRow, ignore);
  } else parser = new JsonlParser(onRow, ignore);
  // Only whole lines: the last, cut one would parse as malformed (and is ignored anyway).
  parser.push(blob.size > HEAD_BYTES ? text.slice(0, text.lastIndexOf('\n') + 1) : text);
  if (blob.size <= HEAD_BYTES) parser.end();
  const columns = header ?? [...keys];
  return columns.length ? columns.map((c) => c.trim()) : undefined;
}
