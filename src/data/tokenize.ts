/**
 * Tokenization of records for batching. The tokenizer is injected (`{ encode(text) }`): the real
 * one comes from the model's tokenizer.json; tests use `ByteTokenizer`. One function becomes at most
 * `maxTokens` code tokens (use packLength − 1: the EOS separator takes the last slot).
 */
import { normalizeCode, type NormalizeOptions } from './normalize';
import type { DataRecord, Label, SplitName } from './types';

export interface Tokenizer {
  encode(text: string): number[];
}

/** UTF-8 bytes as token ids 0..255 (ids ≥ 256 are free for separator/padding). */
export class ByteTokenizer implements Tokenizer {
  private readonly enc = new TextEncoder();
  encode(text: string): number[] {
    return Array.from(this.enc.encode(text));
  }
}

export type TruncationPolicy = 'keep-head' | 'keep-tail' | 'drop';

export interface TokenizeOptions {
  /** Code tokens kept per function at most (packLength − 1). */
  maxTokens: number;
  /** What to do with longer functions (default keep-head). */
  truncation?: TruncationPolicy;
  normalize?: NormalizeOptions;
  /** Only these records (e.g. one split); default all. */
  indices?: readonly number[];
  onProgress?: (done: number, total: number) => void;
}

export interface TokenizedExample {
  tokens: Int32Array;
  label: Label;
  weight: number;
  /** Index of the record it came from. */
  exampleIndex: number;
  split?: SplitName;
  /** Token count before truncation. */
  originalLength: number;
}

export interface TokenizeStats {
  functions: number;
  kept: number;
  truncated: number;
  dropped: number;
  /** Functions with no tokens at all (skipped). */
  empty: number;
  /** Code tokens kept. */
  tokens: number;
  /** Code tokens before truncation. */
  originalTokens: number;
  characters: number;
  ms: number;
  tokensPerSecond: number;
  functionsPerSecond: number;
}

export function tokenizeRecords(
  records: readonly DataRecord[],
  tokenizer: Tokenizer,
  options: TokenizeOptions,
): { examples: TokenizedExample[]; stats: TokenizeStats } {
  const max = options.maxTokens;
  if (!(max >= 1)) throw new RangeError(`maxTokens must be at least 1 (got ${max})`);
  const policy = options.truncation ?? 'keep-head';
  const indices = options.indices ?? records.map((_, i) => i);
  const t0 = performance.now();
  const examples: TokenizedExample[] = [];
  const stats: TokenizeStats = {
    functions: indices.length,
    kept: 0,
    truncated: 0,
    dropped: 0,
    empty: 0,
    tokens: 0,
    originalTokens: 0,
    characters: 0,
    ms: 0,
    tokensPerSecond: 0,
    functionsPerSecond: 0,
  };
  let k = 0;
  for (const i of indices) {
    const r = records[i];
    const text = options.normalize ? normalizeCode(r.code, options.normalize) : r.code;
    stats.characters += text.length;
    const ids = tokenizer.encode(text);
    stats.originalTokens += ids.length;
    if (++k % 256 === 0) options.onProgress?.(k, indices.length);
    if (ids.length === 0) {
      stats.empty++;
      continue;
    }
    let kept: number[] = ids;
    if (ids.length > max) {
      if (policy === 'drop') {
        stats.dropped++;
        continue;
      }
      stats.truncated++;
      kept = policy === 'keep-head' ? ids.slice(0, max) : ids.slice(ids.length - max);
    }
    stats.kept++;
    stats.tokens += kept.length;
    const ex: TokenizedExample = {
      tokens: Int32Array.from(kept),
      label: r.label,
      weight: r.weight ?? 1,
      exampleIndex: i,
      originalLength: ids.length,
    };
    if (r.split) ex.split = r.split;
    examples.push(ex);
  }
  options.onProgress?.(indices.length, indices.length);
  stats.ms = performance.now() - t0;
  const secs = Math.max(stats.ms, 1e-3) / 1000;
  stats.tokensPerSecond = stats.originalTokens / secs;
  stats.functionsPerSecond = indices.length / secs;
  return { examples, stats };
}
