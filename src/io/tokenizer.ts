/**
 * `tokenizer.json` (+ optional `tokenizer_config.json`) through @huggingface/tokenizers. Decoding
 * never applies clean_up_tokenization_spaces, so code round-trips byte for byte; the pad token is
 * resolved (WizardCoder adds `[PAD]` = 49152); ids beyond the embedding table are refused up front.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelFormatError } from './errors.ts';

export interface CodeTokenizer {
  /** Number of ids the tokenizer can produce (highest id + 1, added tokens included). */
  readonly vocabSize: number;
  readonly padId: number;
  readonly eosId: number | undefined;
  readonly bosId: number | undefined;
  /**
   * The special tokens the tokenizer puts before a text (its post-processor: Llama's and
   * DeepSeek-Coder's BOS; none for byte-level BPEs such as StarCoder's and Qwen2's). Runs put them
   * before each function, as the model saw text in pretraining and as `transformers` would.
   */
  readonly prefixIds: readonly number[];
  /** Ids without special tokens added. */
  encode(text: string): number[];
  /** Text from ids, no clean-up; special tokens kept unless `skipSpecial`. */
  decode(ids: readonly number[], skipSpecial?: boolean): string;
  tokenToId(token: string): number | undefined;
}

export interface TokenizerOptions {
  /** Rows of the embedding table (config.vocab_size); a tokenizer producing larger ids is refused. */
  embeddingRows?: number;
  /** pad/eos/bos ids from config.json, used when the tokenizer files name none. */
  padTokenId?: number | null;
  eosTokenId?: number | null;
  bosTokenId?: number | null;
}

function parseJson(text: string, file: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (cause) {
    throw new ModelFormatError(
      'bad-tokenizer',
      file,
      `is not valid JSON (${cause instanceof Error ? cause.message : String(cause)}).`,
      'Download tokenizer.json again, or pick a model whose repository has one.',
    );
  }
}

function tokenName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

/** What encoding with special tokens puts before a text's own ids. */
function specialPrefix(tok: Tokenizer): number[] {
  const probe = 'a';
  const plain = tok.encode(probe, { add_special_tokens: false }).ids;
  const special = tok.encode(probe, { add_special_tokens: true }).ids;
  for (let start = 0; start + plain.length <= special.length; start++) {
    if (plain.every((id, k) => special[start + k] === id)) return special.slice(0, start);
  }
  return [];
}

export function loadTokenizer(
  tokenizerJson: string,
  tokenizerConfigJson: string | undefined,
  options: TokenizerOptions = {},
): CodeTokenizer {
  const tj = parseJson(tokenizerJson, 'tokenizer.json');
  const tc = tokenizerConfigJson ? parseJson(tokenizerConfigJson, 'tokenizer_config.json') : {};
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tj, { ...tc, clean_up_tokenization_spaces: false });
  } catch (cause) {
    throw new ModelFormatError(
      'bad-tokenizer',
      'tokenizer.json',
      `could not be loaded (${cause instanceof Error ? cause.message : String(cause)}).`,
      'The lab reads Hugging Face fast-tokenizer files (tokenizer.json); check the file is complete.',
    );
  }
  const vocab = tok.get_vocab(true);
  let maxId = -1;
  for (const id of vocab.values()) if (id > maxId) maxId = id;
  const vocabSize = maxId + 1;
  if (options.embeddingRows !== undefined && vocabSize > options.embeddingRows) {
    throw new ModelFormatError(
      'vocab-too-large',
      'tokenizer.json',
      `produces token ids up to ${maxId} but the model's embedding table has ${options.embeddingRows} rows (vocab_size).`,
      'The tokenizer does not belong to this model; use the tokenizer from the same repository.',
    );
  }
  const idOf = (name: string | undefined): number | undefined =>
    name === undefined ? undefined : tok.token_to_id(name);
  const fromConfig = (v: number | null | undefined): number | undefined =>
    v === null || v === undefined || v < 0 || v >= vocabSize ? undefined : v;
  const eosId = idOf(tokenName(tc.eos_token)) ?? fromConfig(options.eosTokenId) ?? idOf('<|endoftext|>');
  const bosId = idOf(tokenName(tc.bos_token)) ?? fromConfig(options.bosTokenId) ?? eosId;
  const padId =
    idOf(tokenName(tc.pad_token)) ??
    fromConfig(options.padTokenId) ??
    idOf('[PAD]') ??
    idOf('<pad>') ??
    eosId;
  if (padId === undefined) {
    throw new ModelFormatError(
      'bad-tokenizer',
      'tokenizer.json',
      'names no pad token and no end-of-text token to pad with.',
      'Add a pad_token to tokenizer_config.json.',
    );
  }
  return {
    vocabSize,
    padId,
    eosId,
    bosId,
    prefixIds: specialPrefix(tok),
    encode: (text) => tok.encode(text, { add_special_tokens: false }).ids,
    // The library refuses an empty id list; an empty sequence decodes to the empty string.
    decode: (ids, skipSpecial = false) =>
      ids.length === 0
        ? ''
        : tok.decode([...ids], { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: false }),
    tokenToId: (t) => tok.token_to_id(t),
  };
}
