/**
 * What the Scan panel's heat-map shows of a method's token attributions (train/explain.ts), as plain
 * data: the method's source as written cut into segments (one per token, where it sits in the source;
 * comments and whitespace that normalization removed, or code cut by truncation, are segments without
 * a score), the per-line sums, and the top lines with their share.
 */
import type { NormalizeOptions } from '../data/normalize.ts';
import { lineAttributions, normalizedOffsets, tokenStarts, topLines } from '../train/explain.ts';
import type { ExplainedMethod } from './protocol.ts';

export interface ExplainViewInput {
  /** The method's source as written. */
  original: string;
  /** The text that was tokenized (the normalized code). */
  normalized: string;
  normalize: NormalizeOptions;
  /** The code tokens (the ntp prompt left out). */
  codeTokens: ArrayLike<number>;
  /** One attribution per code token. */
  attributions: ArrayLike<number>;
  decode: (ids: readonly number[]) => string;
}

export const TOP_LINES = 3;

export function explainView(
  input: ExplainViewInput,
  count = TOP_LINES,
): Pick<ExplainedMethod, 'segments' | 'lines' | 'topLines'> {
  const { original, normalized } = input;
  const lines = lineAttributions(input);
  const { text, starts } = tokenStarts(input.codeTokens, input.decode);
  // Where the decoded tokens sit in the normalized code: all of it, its head or its tail
  // (as lineAttributions places them).
  let base = 0;
  if (!normalized.startsWith(text)) {
    const trimmed = text.replace(/^\uFFFD+/, '');
    if (normalized.endsWith(text)) base = normalized.length - text.length;
    else {
      const at = normalized.indexOf(trimmed);
      base = at < 0 ? 0 : at - (text.length - trimmed.length);
    }
  }
  const toOriginal = normalizedOffsets(original, normalized, input.normalize);
  const at = (c: number) => toOriginal[Math.min(Math.max(base + c, 0), normalized.length)];
  const segments: ExplainedMethod['segments'] = [];
  let cursor = 0;
  for (let k = 0; k < input.attributions.length; k++) {
    // A token covers its first to last non-whitespace character in the source; whitespace around
    // it (which normalization may have made) stays with the gaps. A whitespace-only token covers
    // its span when that is whitespace in the source too (not, say, a stripped comment).
    let first = starts[k];
    while (first < starts[k + 1] && /\s/.test(text[first])) first++;
    let last = starts[k + 1] - 1;
    while (last > first && /\s/.test(text[last])) last--;
    let start: number;
    let end: number;
    if (first < starts[k + 1]) {
      start = Math.max(cursor, at(first));
      end = Math.max(start, Math.min(original.length, at(last) + 1));
    } else {
      start = Math.max(cursor, at(starts[k]));
      end = Math.max(start, Math.min(original.length, at(starts[k + 1])));
      if (/\S/.test(original.slice(start, end))) end = start;
    }
    if (start > cursor) segments.push({ text: original.slice(cursor, start), score: null });
    if (end > start) segments.push({ text: original.slice(start, end), score: input.attributions[k] });
    cursor = Math.max(cursor, end);
  }
  if (cursor < original.length) segments.push({ text: original.slice(cursor), score: null });
  return {
    segments,
    lines: lines.map((l) => ({ line: l.line, weight: l.weight })),
    topLines: topLines(lines, count),
  };
}
