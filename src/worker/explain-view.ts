/**
 * What the Scan panel's heat-map shows of a method's token attributions (train/explain.ts), as plain
 * data: the method's source as written cut into segments (one per token, where it sits in the source;
 * comments and whitespace that normalization removed, or code cut by truncation, are segments without
 * a score), the per-line sums, and the top lines with their share.
 */
import { lineAttributions, placeTokens, topLines, type LineInput } from '../train/explain.ts';
import type { ExplainedMethod } from './protocol.ts';

/** The method's source, its normalized text, code tokens and one attribution per token. */
export type ExplainViewInput = LineInput;

export const TOP_LINES = 3;

export function explainView(
  input: ExplainViewInput,
  count = TOP_LINES,
): Pick<ExplainedMethod, 'segments' | 'lines' | 'topLines'> {
  const { original, normalized } = input;
  const lines = lineAttributions(input);
  // Tokens placed in the normalized code as lineAttributions places them.
  const { text, starts, base, toOriginal } = placeTokens(input);
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
