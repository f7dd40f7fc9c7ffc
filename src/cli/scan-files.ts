/**
 * One source file for `scan`: its bytes, decoded as strict UTF-8, parsed with java-parser, and every
 * method and constructor with its region (lines and UTF-16 columns, as SARIF counts them). A file that
 * cannot be read, is not UTF-8 or does not parse comes back as a problem instead, with the line where
 * it could be told.
 */
import { readFile } from 'node:fs/promises';
import { extractJavaMethods, type ExtractedMethod } from '../data/java.ts';
import { lineIndexAt, lineStarts } from '../train/explain.ts';
import type { ScanIssueKind, SourceRegion } from './report.ts';

export interface LocatedMethod {
  method: ExtractedMethod;
  region: SourceRegion;
}

export type ReadJavaResult =
  | { ok: true; methods: LocatedMethod[] }
  | {
      ok: false;
      kind: Extract<ScanIssueKind, 'unreadable' | 'not-utf8' | 'not-java'>;
      message: string;
      /** Where the problem is, when it can be told. */
      line?: number;
      column?: number;
    };

const strict = new TextDecoder('utf-8', { fatal: true });

/** 1-based line of the first byte sequence that is not UTF-8 (multi-byte characters never hold a `\n`). */
function firstBadUtf8Line(bytes: Uint8Array): number | undefined {
  let line = 1;
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i < bytes.length && bytes[i] !== 0x0a) continue;
    try {
      strict.decode(bytes.subarray(start, i));
    } catch {
      return line;
    }
    line++;
    start = i + 1;
  }
  return undefined;
}

/** 1-based line of `offset`, given the `lineStarts` of its text. */
const lineOf = (starts: readonly number[], offset: number): number => lineIndexAt(starts, offset) + 1;

/** The method's region: it starts on `method.line`, and its text is the source from there on. */
export function methodRegion(
  source: string,
  starts: readonly number[],
  method: ExtractedMethod,
): SourceRegion {
  const lineStart = starts[method.line - 1] ?? 0;
  const found = source.indexOf(method.code, lineStart);
  const begin = found < 0 ? lineStart : found;
  const end = begin + method.code.length; // one past the last character
  const endLine = lineOf(starts, Math.max(begin, end - 1));
  return {
    startLine: lineOf(starts, begin),
    startColumn: begin - starts[lineOf(starts, begin) - 1] + 1,
    endLine,
    endColumn: end - starts[endLine - 1] + 1,
  };
}

export async function readJavaFile(path: string): Promise<ReadJavaResult> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    return {
      ok: false,
      kind: 'unreadable',
      message: `cannot be read (${(error as Error).message}); skipped.`,
    };
  }
  let source: string;
  try {
    source = strict.decode(bytes);
  } catch {
    const line = firstBadUtf8Line(bytes);
    return {
      ok: false,
      kind: 'not-utf8',
      message: 'is not UTF-8 text; skipped. Convert it, e.g. iconv -f latin1 -t utf-8.',
      line,
    };
  }
  const extracted = extractJavaMethods(source);
  if (!extracted.ok) {
    const at = /line:\s*(\d+)(?:,\s*column:\s*(\d+))?/i.exec(extracted.message);
    return {
      ok: false,
      kind: 'not-java',
      message: `not parsed as Java (${extracted.message}); skipped.`,
      line: at ? Number(at[1]) : undefined,
      column: at?.[2] ? Number(at[2]) : undefined,
    };
  }
  const starts = lineStarts(source);
  return {
    ok: true,
    methods: extracted.methods.map((method) => ({ method, region: methodRegion(source, starts, method) })),
  };
}
