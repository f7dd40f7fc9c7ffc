/**
 * A lab run as a PyTorch recipe (recipes/torch/): the run's config, its splits tokenized by the
 * lab's own tokenizer (Python never tokenizes; next-token runs get the paper's prompts and answer
 * tokens), the model's config (GPT-BigCode, or a Llama-family llama / qwen2 / starcoder2 config by
 * its Hugging Face fields), the facts packing needs (pack length, EOS separator, pad id) and a
 * torchrun launch script. The trainer reads these and reproduces the run's
 * batching, loss and schedule, so a run that looked good in the browser scales out unchanged.
 *
 * Pure functions over strings and ModelFiles (no DOM, no file system): `src/cli/export-recipe.ts`
 * does the reading and writing.
 */
import {
  ConfigError,
  describeDecoder,
  type LlamaFamilyConfig,
  type ResolvedConfig,
} from '../engine/index.ts';
import { VulnLabError } from '../shared/errors.ts';
import { SPLIT_NAMES, type DataRecord, type SplitName } from '../data/types.ts';
import { parseConfigJson } from '../io/config.ts';
import type { ModelFiles } from '../io/files.ts';
import { readText } from '../io/source.ts';
import { loadTokenizer, type CodeTokenizer } from '../io/tokenizer.ts';
import { resolveConfig, type RunConfig } from './config.ts';
import { prepareRunData } from './prepare.ts';
import type { RunData } from './types.ts';

/** Version of the recipe layout; recipes/torch/train.py refuses others. */
export const RECIPE_FORMAT = 1;

export class RecipeError extends VulnLabError {
  constructor(message: string, hint: string) {
    super('bad-input', message, hint);
  }
}

/** `run.json` of a lab run: which model and which data file (relative to the run folder). */
export interface RunPointer {
  model: string;
  data: string;
}

export function parseRunPointer(text: string, file = 'run.json'): RunPointer {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new RecipeError(`${file} is not JSON: ${(error as Error).message}`, 'Train the run again.');
  }
  const r = raw as Partial<RunPointer>;
  if (!r || typeof r.model !== 'string' || !r.model || typeof r.data !== 'string' || !r.data) {
    throw new RecipeError(
      `${file} needs "model" and "data" strings.`,
      'A run folder written by `npm run vulnlab -- train` has run.json = { "model": …, "data": "data.jsonl" }.',
    );
  }
  return { model: r.model, data: r.data };
}

/** A run's config.json, validated (unknown or wrong fields named). */
export function parseRunConfig(text: string, file = 'config.json'): RunConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new RecipeError(`${file} is not JSON: ${(error as Error).message}`, 'Train the run again.');
  }
  return resolveConfig(raw);
}

/** The run's `data.jsonl`: every record with the split it was assigned (DataRecord fields). */
export function parseRunRecords(text: string, file = 'data.jsonl'): DataRecord[] {
  const records: DataRecord[] = [];
  const fail = (line: number, what: string) =>
    new RecipeError(
      `${file}:${line}: ${what}`,
      'Each line is a record with code, label (0/1), split (train/validation/test) and optional cwe and weight.',
    );
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let r: Partial<DataRecord>;
    try {
      r = JSON.parse(line) as Partial<DataRecord>;
    } catch (error) {
      throw fail(i + 1, `not JSON (${(error as Error).message})`);
    }
    if (typeof r.code !== 'string' || !r.code) throw fail(i + 1, 'no code');
    if (r.label !== 0 && r.label !== 1) throw fail(i + 1, `label ${JSON.stringify(r.label)} is not 0 or 1`);
    if (!r.split || !SPLIT_NAMES.includes(r.split)) throw fail(i + 1, `split ${JSON.stringify(r.split)}`);
    if (r.weight !== undefined && !(typeof r.weight === 'number' && r.weight > 0)) {
      throw fail(i + 1, `weight ${JSON.stringify(r.weight)} is not a positive number`);
    }
    records.push(r as DataRecord);
  });
  if (records.length === 0) throw new RecipeError(`${file} has no records.`, 'Train the run again.');
  return records;
}

/** What the recipe needs from the base model: its config, tokenizer, separator and pad ids. */
export interface RecipeModel {
  /**
   * recipe.json's `model.config`, what recipes/torch/model.py builds the model from (Hugging Face
   * field names): GPT-BigCode's resolved fields with model_type "gpt_bigcode", or a Llama-family
   * config's fields as config.json has them (model.py reads them with the engine's defaults).
   */
  config: Record<string, unknown>;
  /** Position ids stay below this: n_positions (GPT-BigCode's wpe rows) or max_position_embeddings. */
  maxPositions: number;
  tokenizer: CodeTokenizer;
  separatorId: number;
  padId: number;
  /** Files to copy with the recipe (config, weights, tokenizer), relative to the model folder. */
  files: string[];
}

/**
 * Reads config.json and the tokenizer as the lab's loader does (src/io/load.ts, src/train/prepare.ts:
 * same tokenizer options, EOS as separator), without loading the weights: a large base stays on disk.
 * The recipe's trainer reads safetensors, so a folder without them is refused here.
 */
export async function loadRecipeModel(files: ModelFiles): Promise<RecipeModel> {
  const listing = (await files.list()).map((f) => f.path);
  const need = (name: string) => {
    if (!listing.includes(name)) {
      throw new RecipeError(
        `${files.label} has no ${name}.`,
        'Pick the model folder the run trained on (config.json, tokenizer.json and safetensors weights).',
      );
    }
    return name;
  };
  const read = async (name: string) => {
    const source = await files.open(name);
    try {
      return await readText(source);
    } finally {
      await source.close?.();
    }
  };
  const model = recipeModelConfig(await read(need('config.json')), files.label);
  const tokenizerConfig = listing.includes('tokenizer_config.json')
    ? await read('tokenizer_config.json')
    : undefined;
  const tokenizer = loadTokenizer(await read(need('tokenizer.json')), tokenizerConfig, {
    embeddingRows: model.vocabSize,
    padTokenId: model.tokens.pad,
    eosTokenId: model.tokens.eos,
    bosTokenId: model.tokens.bos,
  });
  const separatorId = tokenizer.eosId ?? model.tokens.eos;
  if (separatorId === undefined || separatorId === null) {
    throw new RecipeError(
      `${files.label} names no end-of-sequence token.`,
      'Packing needs an EOS separator.',
    );
  }
  const weights = listing.filter((p) => !p.includes('/') && /\.safetensors(\.index\.json)?$/.test(p));
  if (weights.length === 0) {
    throw new RecipeError(
      `${files.label} has no safetensors weights.`,
      'The PyTorch recipe reads safetensors (one file or shards with model.safetensors.index.json); convert .bin or GGUF first.',
    );
  }
  const extras = ['config.json', 'tokenizer.json', 'tokenizer_config.json'].filter((f) =>
    listing.includes(f),
  );
  return {
    config: model.config,
    maxPositions: model.maxPositions,
    tokenizer,
    separatorId,
    padId: tokenizer.padId,
    files: [...extras, ...weights],
  };
}

/** The Llama family's model_type values (src/engine/model/llama-family.ts LLAMA_FAMILIES). */
const LLAMA_MODEL_TYPES: readonly LlamaFamilyConfig['model_type'][] = ['llama', 'qwen2', 'starcoder2'];

/** The Llama-family config.json fields recipes/torch/model.py reads (`Arch`), copied when present. */
const LLAMA_FIELDS = [
  'model_type',
  'vocab_size',
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_key_value_heads',
  'head_dim',
  'hidden_act',
  'max_position_embeddings',
  'rms_norm_eps',
  'norm_epsilon',
  'rope_theta',
  'rope_scaling',
  'attention_bias',
  'mlp_bias',
  'use_bias',
  'sliding_window',
  'use_sliding_window',
  'tie_word_embeddings',
] as const;

/** A token id of a config (the first of a list: Llama-family configs may name several EOS ids). */
const tokenId = (v: unknown): number | null => {
  const id = Array.isArray(v) ? (v[0] as unknown) : v;
  return typeof id === 'number' ? id : null;
};

interface RecipeModelConfig {
  config: Record<string, unknown>;
  vocabSize: number;
  maxPositions: number;
  tokens: { eos: number | null; pad: number | null; bos: number | null };
}

/**
 * A model's config.json as recipe.json describes it: GPT-BigCode as the lab parses it (src/io/config.ts),
 * or a Llama-family config validated as the engine resolves it (describeDecoder) and passed on field
 * by field (recipes/torch/model.py `Arch` applies the same defaults).
 */
function recipeModelConfig(text: string, label: string): RecipeModelConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    raw = undefined; // parseConfigJson below names the problem
  }
  const o = raw && typeof raw === 'object' ? (raw as Record<string, unknown>) : {};
  if (LLAMA_MODEL_TYPES.includes(o.model_type as LlamaFamilyConfig['model_type'])) {
    let maxPositions: number;
    try {
      maxPositions = describeDecoder(o as unknown as LlamaFamilyConfig).maxPositions;
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      throw new RecipeError(
        `${label}/config.json: ${error.message}`,
        'Pick the model folder the run trained on.',
      );
    }
    const config: Record<string, unknown> = {};
    for (const field of LLAMA_FIELDS) if (o[field] !== undefined) config[field] = o[field];
    return {
      config,
      vocabSize: o.vocab_size as number,
      maxPositions,
      tokens: { eos: tokenId(o.eos_token_id), pad: tokenId(o.pad_token_id), bos: tokenId(o.bos_token_id) },
    };
  }
  const c = parseConfigJson(text) as ResolvedConfig;
  return {
    config: {
      model_type: 'gpt_bigcode',
      vocab_size: c.vocab_size,
      n_embd: c.n_embd,
      n_layer: c.n_layer,
      n_head: c.n_head,
      n_inner: c.n_inner,
      n_positions: c.n_positions,
      multi_query: c.multi_query,
      activation_function: c.activation_function,
      layer_norm_epsilon: c.layer_norm_epsilon,
    },
    vocabSize: c.vocab_size,
    maxPositions: c.n_positions,
    tokens: { eos: tokenId(c.eos_token_id), pad: tokenId(c.pad_token_id), bos: tokenId(c.bos_token_id) },
  };
}

export interface RecipeSplitStats {
  functions: number;
  positives: number;
  tokens: number;
}

export interface PreparedRecipe {
  /** recipe.json */
  manifest: Record<string, unknown>;
  /** splits/<name>.jsonl */
  splits: Record<SplitName, string>;
  data: RunData;
}

/**
 * Tokenizes the run's records exactly as the lab's run does (prepareRunData: its splits, truncation
 * and normalization) and lays them out for the trainer, one function per line.
 */
export function prepareRecipe(
  config: RunConfig,
  records: readonly DataRecord[],
  model: RecipeModel,
  about: { modelName: string; modelPath: string; run: string },
): PreparedRecipe {
  const packLength = Math.min(config.batching.packLength, model.maxPositions);
  const { data, tokenize } = prepareRunData(records, model.tokenizer, config, packLength);
  const splits = {} as Record<SplitName, string>;
  const stats = {} as Record<SplitName, RecipeSplitStats>;
  for (const split of SPLIT_NAMES) {
    const lines = data[split].map((e) =>
      JSON.stringify({
        tokens: Array.from(e.tokens),
        label: e.label,
        weight: e.weight,
        cwe: e.cwe ?? null,
        example_index: e.exampleIndex,
        code: records[e.exampleIndex].code,
      }),
    );
    splits[split] = lines.length ? lines.join('\n') + '\n' : '';
    stats[split] = {
      functions: data[split].length,
      positives: data[split].filter((e) => e.label === 1).length,
      tokens: data[split].reduce((sum, e) => sum + e.tokens.length, 0),
    };
  }
  const manifest = {
    format: RECIPE_FORMAT,
    createdBy: 'npm run vulnlab -- export-recipe',
    run: about.run,
    model: {
      name: about.modelName,
      path: about.modelPath,
      config: model.config,
    },
    packLength,
    separatorId: model.separatorId,
    padId: model.padId,
    // Next-token objective: the splits hold the paper's prompts; training appends one of these.
    answers: data.answers ?? null,
    splits: stats,
    tokenize: { truncated: tokenize.truncated, dropped: tokenize.dropped, empty: tokenize.empty },
  };
  return { manifest, splits, data };
}

/** launch.sh: torchrun on this node (all its GPUs, or one CPU process) or across nodes. */
export function launchScript(about: { run: string; model: string }): string {
  return `#!/usr/bin/env bash
# VulnLab recipe exported from ${about.run} (model ${about.model}).
# Trains the run on PyTorch under torchrun; outputs (metrics.json, scores.csv, adapter/) go to $OUT.
#   bash launch.sh                                   # this node: every GPU, or one CPU process
#   NPROC_PER_NODE=2 bash launch.sh --device cpu     # two CPU processes (gloo)
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=host0 bash launch.sh --precision bf16   # on each of two nodes
# Arguments go to the trainer: python3 trainer/train.py --help (--fsdp, --precision, --micro-batch,
# --save-every N, --resume, --base-format q8_0|q4_0, --max-steps N).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
PYTHON="\${PYTHON:-python3}"
TORCHRUN="\${TORCHRUN:-torchrun}"
NNODES="\${NNODES:-1}"
NPROC_PER_NODE="\${NPROC_PER_NODE:-$("$PYTHON" -c 'import torch; print(max(1, torch.cuda.device_count()))')}"
if [ "$NNODES" = 1 ]; then
  where=(--standalone)
else
  where=(--nnodes "$NNODES" --node_rank "\${NODE_RANK:?set NODE_RANK}" --master_addr "\${MASTER_ADDR:?set MASTER_ADDR}" --master_port "\${MASTER_PORT:-29500}")
fi
# --redirects 1 --tee 1 = the usual console output (also logged); the default "0" fails with Debian's
# torch 1.13 on Python 3.11 (its Std flag has no member for 0 there).
exec $TORCHRUN "\${where[@]}" --nproc_per_node "$NPROC_PER_NODE" --redirects 1 --tee 1 \\
  "$here/trainer/train.py" --recipe "$here" --out "\${OUT:-$here/out}" "$@"
`;
}

/**
 * Copies model files (a folder or a Hub repository) piece by piece, so a large checkpoint never sits
 * in memory whole: `write` receives each file's pieces in order (`offset` 0 starts a file).
 */
export async function copyModelFiles(
  files: ModelFiles,
  names: readonly string[],
  write: (name: string, offset: number, bytes: Uint8Array) => Promise<void>,
  pieceBytes = 64 << 20,
): Promise<number> {
  let total = 0;
  for (const name of names) {
    const source = await files.open(name);
    try {
      for (let offset = 0; offset < source.size || offset === 0; offset += pieceBytes) {
        const bytes = await source.read(offset, Math.min(pieceBytes, source.size - offset));
        await write(name, offset, bytes);
        total += bytes.byteLength;
        if (source.size === 0) break;
      }
    } finally {
      await source.close?.();
    }
  }
  return total;
}

/** The trainer's files, copied into every recipe so it runs where the lab is not installed. */
export const TRAINER_FILES = ['train.py', 'model.py', 'data.py', 'metrics.py'];
