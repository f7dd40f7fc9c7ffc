/**
 * A small byte-level BPE trainer (GPT-2 style) that writes a Hugging Face `tokenizer.json`.
 *
 * - Bytes are mapped to printable characters with GPT-2's bytes_to_unicode table, so all 256 byte
 *   symbols are in the base vocabulary and no input byte can be dropped.
 * - Text is pre-tokenized with GPT-2's regex (as the ByteLevel pre-tokenizer with use_regex does).
 * - Merges are learned greedily by pair frequency over the unique pre-tokens (ties broken by the
 *   pair's string order so the result is deterministic).
 */

/** GPT-2 bytes_to_unicode: byte → printable character. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const table: string[] = new Array(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i])));
  return table;
}

export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export interface BpeResult {
  /** token string → id */
  vocab: Map<string, number>;
  merges: [string, string][];
}

/**
 * Trains merges until the vocabulary (special tokens first, then the 256 byte symbols, then merges)
 * reaches `vocabSize` or no pair occurs at least `minFrequency` times.
 */
export function trainBpe(
  texts: string[],
  vocabSize: number,
  specialTokens: string[],
  minFrequency = 2,
): BpeResult {
  const b2u = bytesToUnicode();
  const enc = new TextEncoder();
  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    for (const m of text.matchAll(GPT2_PATTERN)) {
      const w = [...enc.encode(m[0])].map((b) => b2u[b]).join('');
      wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
    }
  }
  const words = [...wordCounts.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([w, c]) => ({ syms: [...w], c }));
  const vocab = new Map<string, number>();
  for (const s of specialTokens) vocab.set(s, vocab.size);
  for (const ch of [...b2u].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!)) vocab.set(ch, vocab.size);
  const merges: [string, string][] = [];
  while (vocab.size < vocabSize) {
    const pairs = new Map<string, number>();
    for (const { syms, c } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const key = `${syms[i]} ${syms[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + c);
      }
    }
    let best: string | undefined;
    let bestCount = 0;
    for (const [k, c] of pairs) {
      if (c > bestCount || (c === bestCount && best !== undefined && k < best)) {
        best = k;
        bestCount = c;
      }
    }
    if (!best || bestCount < minFrequency) break;
    const [a, b] = best.split(' ');
    const merged = a + b;
    merges.push([a, b]);
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
    for (const w of words) {
      const s = w.syms;
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] === a && s[i + 1] === b) s.splice(i, 2, merged);
      }
    }
  }
  return { vocab, merges };
}

/** A Hugging Face tokenizer.json for a byte-level BPE. `added` are special tokens appended after the vocab. */
export function tokenizerJson(bpe: BpeResult, specialTokens: string[], added: string[]): object {
  const vocab = new Map(bpe.vocab);
  for (const t of added) vocab.set(t, vocab.size);
  const addedTokens = [...specialTokens, ...added].map((content) => ({
    id: vocab.get(content)!,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: { type: 'ByteLevel', ...byteLevel, trim_offsets: false },
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: bpe.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}
