/**
 * Which lines drove a detector's score: token attributions from the engine (engine/model/attribution.ts:
 * gradient × input or integrated gradients of the margin logit(vulnerable) − logit(not), the
 * log-odds of the probability), computed on examples packed as scoring packs them, then mapped back to
 * the method's source lines through the tokenizer (character offsets from decoding prefixes, which
 * round-trip byte for byte) and the normalization (comments stripped, whitespace collapsed).
 */
import {
  attributeBatch,
  DEFAULT_IG_STEPS,
  type AttributionMethod,
  type ScoreTerm,
  type TrainStep,
} from '../engine/index.ts';
import { lexJava, type NormalizeOptions } from '../data/normalize.ts';
import { stepBatches, toPackedBatch, type StepPacking } from './batches.ts';
import type { NtpAnswers, RunExample } from './types.ts';

export { DEFAULT_IG_STEPS, type AttributionMethod } from '../engine/index.ts';

export interface ExplainOptions {
  method: AttributionMethod;
  /** Integrated-gradients steps (default 16). */
  steps?: number;
}

export interface ExampleAttribution {
  /** logit(vulnerable) − logit(not) at the input: the log-odds of the probability. */
  margin: number;
  /** ig: the margin at the baseline (all pad tokens); the attributions sum to about margin − this. */
  baselineMargin?: number;
  /** One value per token of the example (`example.tokens` order, the ntp prompt included). */
  tokens: Float64Array;
}

/**
 * Attributions of every example, in input order. Functions are packed as `scoreExamples` packs them;
 * with block-diagonal attention one backward (per integrated-gradients step) serves a whole batch,
 * with the paper's cross-function attention each function gets its own.
 */
export async function explainExamples(
  step: TrainStep,
  examples: readonly RunExample[],
  packing: StepPacking,
  options: ExplainOptions,
  answers?: NtpAnswers,
): Promise<ExampleAttribution[]> {
  const out = new Array<ExampleAttribution>(examples.length);
  for (const batch of stepBatches(examples, packing, 0, false)) {
    step.setBatch(toPackedBatch(batch, examples, packing));
    // cls: the batch's function index; ntp: the prompt's last token row.
    const terms: ScoreTerm[] = batch.functions.map((f, i) => ({ at: answers ? f.last : i, weight: 1 }));
    const groups = packing.mode === 'paper' ? terms.map((t) => [t]) : [terms];
    const results = await attributeBatch(step, groups, {
      method: options.method,
      steps: options.steps ?? DEFAULT_IG_STEPS,
      baselineId: packing.padId,
      answers,
    });
    batch.functions.forEach((f, i) => {
      const g = packing.mode === 'paper' ? i : 0;
      const k = packing.mode === 'paper' ? 0 : i;
      const r = results[g];
      out[f.exampleIndex] = {
        margin: r.margins[k],
        ...(r.baselineMargins && { baselineMargin: r.baselineMargins[k] }),
        tokens: r.tokens.slice(f.start, f.start + f.length),
      };
    });
  }
  return out;
}

/** Characters of `text` covered by each token: [start[k], start[k + 1]), start[n] = text.length. */
export function tokenStarts(
  tokens: ArrayLike<number>,
  decode: (ids: readonly number[]) => string,
): { text: string; starts: Int32Array } {
  const ids = Array.from(tokens);
  const text = decode(ids);
  const starts = new Int32Array(ids.length + 1);
  starts[ids.length] = text.length;
  for (let k = 1; k < ids.length; k++) {
    // A prefix decodes to a prefix of the text, except for a character cut inside its UTF-8 bytes
    // (a replacement character at the end): the common prefix is the token's first character.
    const prefix = decode(ids.slice(0, k));
    let n = Math.min(prefix.length, text.length);
    if (!text.startsWith(prefix)) {
      n = 0;
      while (n < prefix.length && prefix.charCodeAt(n) === text.charCodeAt(n)) n++;
    }
    starts[k] = Math.max(n, starts[k - 1]);
  }
  return { text, starts };
}

/**
 * For each character of `normalized` (and one past its end), the offset of the same character in
 * `original`: the identity when normalization changed nothing, else the non-whitespace characters
 * matched in order (skipping comments when they were stripped), whitespace mapped to the next match.
 */
export function normalizedOffsets(
  original: string,
  normalized: string,
  options: NormalizeOptions,
): Int32Array {
  const map = new Int32Array(normalized.length + 1);
  if (original === normalized) {
    for (let i = 0; i <= normalized.length; i++) map[i] = i;
    return map;
  }
  const skip = new Uint8Array(original.length);
  if (options.stripComments) {
    let at = 0;
    for (const p of lexJava(original)) {
      if (p.kind === 'comment') skip.fill(1, at, at + p.text.length);
      at += p.text.length;
    }
  }
  let j = 0;
  for (let i = 0; i < normalized.length; i++) {
    const ch = normalized[i];
    if (/\s/.test(ch)) {
      map[i] = Math.min(j, original.length);
      continue;
    }
    let k = j;
    while (k < original.length && (skip[k] || original[k] !== ch)) k++;
    if (k >= original.length) {
      map[i] = Math.min(j, original.length);
      continue;
    }
    map[i] = k;
    j = k + 1;
  }
  map[normalized.length] = original.length;
  return map;
}

/**
 * 0-based offsets where each line starts: CRLF, CR and LF each end a line (as java-parser and SARIF
 * count). Also src/cli/scan-files.ts's, for the regions of scanned methods.
 */
export function lineStarts(source: string): number[] {
  const starts = [0];
  for (let i = 0; i < source.length; i++) {
    const c = source.charCodeAt(i);
    if (c === 0x0d && source.charCodeAt(i + 1) === 0x0a) continue;
    if (c === 0x0a || c === 0x0d) starts.push(i + 1);
  }
  return starts;
}

/** 0-based line of `offset`, given the `lineStarts` of its text. */
export function lineIndexAt(starts: readonly number[], offset: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export interface LineAttribution {
  /** 0-based line within the method's code. */
  line: number;
  /** Sum of its tokens' attributions. */
  weight: number;
}

export interface LineInput {
  /** The method's source as written. */
  original: string;
  /** The text that was tokenized (the normalized code). */
  normalized: string;
  normalize: NormalizeOptions;
  /**
   * The code tokens, the ntp prompt left out (a head or tail slice of the normalized code's tokens
   * when truncated).
   */
  codeTokens: ArrayLike<number>;
  /** One attribution per code token. */
  attributions: ArrayLike<number>;
  decode: (ids: readonly number[]) => string;
}

/**
 * The decoded code tokens (`text`, each token's offset in it in `starts`), where they sit in the
 * normalized code (`text[c]` is `normalized[base + c]`: all of it, its head or its tail) and the map
 * from normalized to original offsets. Shared by `lineAttributions` and the heat-map's segments
 * (worker/explain-view.ts), so both place tokens alike.
 */
export function placeTokens(input: LineInput): {
  text: string;
  starts: Int32Array;
  base: number;
  toOriginal: Int32Array;
} {
  const { original, normalized } = input;
  const { text, starts } = tokenStarts(input.codeTokens, input.decode);
  let base = 0;
  if (!normalized.startsWith(text)) {
    const trimmed = text.replace(/^\uFFFD+/, '');
    if (normalized.endsWith(text)) base = normalized.length - text.length;
    else {
      const at = normalized.indexOf(trimmed);
      base = at < 0 ? 0 : at - (text.length - trimmed.length);
    }
  }
  return { text, starts, base, toOriginal: normalizedOffsets(original, normalized, input.normalize) };
}

/**
 * Token attributions summed per source line. A token counts for the line of its first
 * non-whitespace character (a pure-whitespace token for the line it starts on).
 */
export function lineAttributions(input: LineInput): LineAttribution[] {
  const { original, normalized } = input;
  const { text, starts, base, toOriginal } = placeTokens(input);
  const lines = lineStarts(original);
  const weights = new Map<number, number>();
  for (let k = 0; k < input.attributions.length; k++) {
    let c = starts[k];
    while (c < starts[k + 1] && /\s/.test(text[c])) c++;
    if (c >= starts[k + 1]) c = starts[k];
    const n = Math.min(Math.max(base + c, 0), normalized.length);
    const line = lineIndexAt(lines, Math.min(toOriginal[n], Math.max(0, original.length - 1)));
    weights.set(line, (weights.get(line) ?? 0) + input.attributions[k]);
  }
  return [...weights].map(([line, weight]) => ({ line, weight })).sort((a, b) => a.line - b.line);
}

/**
 * The `count` lines with the largest positive weight, strongest first, each with its share of the
 * total absolute weight of all lines.
 */
export function topLines(
  lines: readonly LineAttribution[],
  count = 3,
): { line: number; weight: number; share: number }[] {
  const total = lines.reduce((s, l) => s + Math.abs(l.weight), 0);
  if (!(total > 0)) return [];
  return lines
    .filter((l) => l.weight > 0)
    .sort((a, b) => b.weight - a.weight)
    .slice(0, count)
    .map((l) => ({ ...l, share: l.weight / total }));
}
