/**
 * From files to a run's inputs, shared by the worker and the CLI: the model's weights and tokenizer
 * through src/io, the dataset through src/data (splits, normalization, tokenization with truncation).
 */
import { decodeWeight, describeDecoder } from '../engine/index.ts';
import { assignSplits, type SplitResult } from '../data/splits.ts';
import { tokenizeRecords, type TokenizeStats } from '../data/tokenize.ts';
import type { DataRecord, SplitName } from '../data/types.ts';
import type { WeightCache } from '../io/cache.ts';
import type { ModelFiles } from '../io/files.ts';
import { configEosId } from '../io/config.ts';
import { inspectModel, loadModel, parameterCount, type LoadedModel } from '../io/load.ts';
import { rowsCols } from '../io/tensors.ts';
import type { ProgressCallback } from '../io/progress.ts';
import type { CodeTokenizer } from '../io/tokenizer.ts';
import type { RunConfig } from './config.ts';
import { RunError, type NtpAnswers, type RunData, type RunExample, type RunModel } from './types.ts';

export interface PreparedModel {
  model: RunModel;
  tokenizer: CodeTokenizer;
  loaded: LoadedModel;
}

/**
 * f32 base weights above this size are not kept in memory: every upload streams them from the
 * checkpoint files, tensor by tensor (peak CPU ≈ the largest tensor).
 */
export const KEEP_WEIGHTS_MAX_BYTES = 512 * 2 ** 20;

export interface LoadRunModelOptions {
  onProgress?: ProgressCallback;
  /**
   * 'keep': f32 weights in memory (fast re-uploads; what CPU consumers such as the ONNX export need);
   * 'stream': headers only, weights streamed at each upload; 'auto' (default): keep up to
   * KEEP_WEIGHTS_MAX_BYTES, stream larger models.
   */
  weights?: 'auto' | 'keep' | 'stream';
  /** Converted weights kept between loads (browser: OPFS / Cache API; Node: a directory). */
  cache?: WeightCache;
}

/** A checkpoint's config, tokenizer and (for small models) f32 weights, for runs and detectors. */
export async function loadRunModel(
  files: ModelFiles,
  name: string,
  options: LoadRunModelOptions = {},
): Promise<PreparedModel> {
  const policy = options.weights ?? 'auto';
  let loaded = policy === 'keep' ? undefined : await inspectModel(files);
  const stream =
    policy === 'stream' ||
    (loaded !== undefined && parameterCount(loaded.config) * 4 > KEEP_WEIGHTS_MAX_BYTES);
  const weights = new Map<string, Float32Array>();
  if (!stream) {
    loaded = await loadModel(files, {
      weightFormat: 'f32',
      formatFor: () => 'f32',
      onProgress: options.onProgress,
      cache: options.cache,
      sink: async (tensorName, shape, format, bytes) => {
        weights.set(tensorName, decodeWeight(format, ...rowsCols(shape), bytes));
      },
    });
  }
  const { tokenizer, config } = loaded!;
  if (!tokenizer) {
    throw new RunError(
      `${name} has no tokenizer.json.`,
      'Pick a model folder or repository with tokenizer.json.',
    );
  }
  const separatorId = tokenizer.eosId ?? configEosId(config);
  if (separatorId === undefined || separatorId === null) {
    throw new RunError(
      `${name} names no end-of-sequence token.`,
      'Packing needs an EOS token to separate functions.',
    );
  }
  return {
    model: {
      name,
      config,
      weights,
      files: stream ? { files, onProgress: options.onProgress, cache: options.cache } : undefined,
      separatorId,
      padId: tokenizer.padId,
    },
    tokenizer,
    loaded: loaded!,
  };
}

/** The model's context: position ids stay below it (GPT-BigCode's n_positions, max_position_embeddings). */
export function contextLength(model: Pick<RunModel, 'config'>): number {
  return describeDecoder(model.config).maxPositions;
}

/**
 * The paper's next-token-prediction prompt: `Question: <code>\n\nAnswer:` followed by " YES" or
 * " NO". The answer's leading space belongs to its token (byte-level BPE), so the prompt ends at the
 * colon; a function's score compares the two answers' logits at the prompt's last token.
 */
export const NTP_PROMPT = { before: 'Question: ', after: '\n\nAnswer:', yes: ' YES', no: ' NO' } as const;

/**
 * The first token of " YES" and of " NO" as they follow the prompt: they must differ for the answer
 * to be readable. Read in context (the prompt's end followed by the answer, less the prompt's end's
 * own tokens), since a SentencePiece-style tokenizer (Llama) writes a lone " YES" as "▁" + "▁YES";
 * byte-level BPEs give the same token either way.
 */
export function ntpAnswers(tokenizer: Pick<CodeTokenizer, 'encode'>): NtpAnswers {
  const after = tokenizer.encode(NTP_PROMPT.after);
  const answer = (text: string): number | undefined => {
    const ids = tokenizer.encode(NTP_PROMPT.after + text);
    const inContext = ids.length > after.length && after.every((id, i) => ids[i] === id);
    return inContext ? ids[after.length] : tokenizer.encode(text)[0];
  };
  const yes = answer(NTP_PROMPT.yes);
  const no = answer(NTP_PROMPT.no);
  if (yes === undefined || no === undefined || yes === no) {
    throw new RunError(
      'This tokenizer cannot tell " YES" from " NO" by their first token.',
      'Use the classification objective (cls) with this model.',
    );
  }
  return { yes, no };
}

/**
 * How a function's code sits in a pack: after the special tokens the tokenizer puts before a text
 * (Llama's BOS; none for byte-level BPEs) and, with the next-token objective, inside the paper's
 * prompt, answered by one of two tokens. Training, evaluation, scanning and exported detectors all
 * frame code so.
 */
export interface CodeFrame {
  before: number[];
  after: number[];
  /** Next-token objective: the answer tokens (vulnerable = yes); null for classification. */
  answers: NtpAnswers | null;
}

export function codeFrame(
  tokenizer: Pick<CodeTokenizer, 'encode'> & Partial<Pick<CodeTokenizer, 'prefixIds'>>,
  objective: RunConfig['objective'],
): CodeFrame {
  const prefix = [...(tokenizer.prefixIds ?? [])];
  if (objective !== 'ntp') return { before: prefix, after: [], answers: null };
  return {
    before: [...prefix, ...tokenizer.encode(NTP_PROMPT.before)],
    after: tokenizer.encode(NTP_PROMPT.after),
    answers: ntpAnswers(tokenizer),
  };
}

/**
 * Code tokens a function may keep in a pack of `packLength`: one goes to the separator, and the
 * frame and (in training) the answer token share the pack.
 */
export function codeTokensPerPack(packLength: number, frame: CodeFrame): number {
  return packLength - 1 - frame.before.length - frame.after.length - (frame.answers ? 1 : 0);
}

export interface PreparedData {
  data: RunData;
  splits: SplitResult;
  tokenize: TokenizeStats;
}

/**
 * Splits (the records' split field when present, else seeded stratified), normalizes and tokenizes.
 * Functions longer than the pack are truncated or dropped by `config.truncation`.
 */
export function prepareRunData(
  records: readonly DataRecord[],
  tokenizer: Pick<CodeTokenizer, 'encode'>,
  config: RunConfig,
  packLength: number,
  onProgress?: (done: number, total: number) => void,
): PreparedData {
  const splits = assignSplits(records, { strategy: 'auto', seed: config.seed });
  const frame = codeFrame(tokenizer, config.objective);
  const maxTokens = codeTokensPerPack(packLength, frame);
  if (maxTokens < 1) {
    throw new RunError(
      `A pack of ${packLength} tokens leaves no room for code after the ${frame.answers ? 'prompt' : 'special tokens'}.`,
      'Use a longer pack length.',
    );
  }
  const { examples, stats } = tokenizeRecords(records, tokenizer, {
    maxTokens,
    truncation:
      config.truncation === 'head' ? 'keep-head' : config.truncation === 'tail' ? 'keep-tail' : 'drop',
    normalize: config.normalize,
    onProgress,
  });
  const data: RunData = { train: [], validation: [], test: [] };
  if (frame.answers) data.answers = frame.answers;
  for (const example of examples) {
    const record = records[example.exampleIndex];
    const split: SplitName = splits.assignment[example.exampleIndex];
    const item: RunExample = {
      tokens:
        frame.before.length + frame.after.length > 0
          ? Int32Array.from([...frame.before, ...example.tokens, ...frame.after])
          : example.tokens,
      label: example.label,
      weight: example.weight,
      cwe: record.cwe,
      exampleIndex: example.exampleIndex,
    };
    data[split].push(item);
  }
  return { data, splits, tokenize: stats };
}
