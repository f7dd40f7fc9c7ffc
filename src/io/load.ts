/**
 * One API to load a model (GPT-BigCode, Llama, Qwen2, StarCoder2) from any source and format:
 *
 *   const model = await loadModel(files, { weightFormat: 'q4_0', sink, onProgress });
 *
 * It reads config.json (or the GGUF metadata), picks the weights from the listing (sharded or single
 * safetensors, pytorch_model.bin, or GGUF), validates every tensor's name, shape and byte range
 * against the config *before* anything reaches the sink, then streams the tensors one at a time —
 * read in row chunks, converted/quantized, handed to the sink, dropped — so peak memory stays near the
 * largest tensor in its target format. On failure after streaming started, `abort` is called so the
 * sink can free what it already uploaded. `loadModelToGpu` (./load-gpu.ts) is this with the engine's
 * model as the sink.
 */
import { type ParamSpec } from '../engine/model/config.ts';
import { baseParamSpecs, describeDecoder, isLlamaFamily, type ModelConfig } from '../engine/model/decoder.ts';
import type { Objective } from '../shared/batch.ts';
import type { CacheKey, CachedTensor, CacheWriter, WeightCache } from './cache.ts';
import { configEosId, configSummary, parseConfigJson } from './config.ts';
import { sameFormat, sourceBytes, toF32, fromF32, weightBytes, type WeightFormat } from './convert.ts';
import { ModelFormatError } from './errors.ts';
import type { ModelFileInfo, ModelFiles } from './files.ts';
import { readGguf } from './gguf.ts';
import { ProgressTracker, type ProgressCallback } from './progress.ts';
import { parseSafetensorsIndex, readSafetensorsHeader, readShardedSafetensors } from './safetensors.ts';
import { readText, type ByteSource } from './source.ts';
import { loadTokenizer, type CodeTokenizer } from './tokenizer.ts';
import { readTorchBin } from './torch-bin.ts';
import { rowsCols, type TensorEntry } from './tensors.ts';

// Plain arithmetic, in engine/model/sizes.ts so that the page's presets need no loader.
export { parameterCount } from '../engine/model/sizes.ts';

export type { WeightFormat };

/** Receives each tensor once, in its target format (see src/engine/quant.ts for byte layouts). */
export type TensorSink = (
  name: string,
  shape: number[],
  format: WeightFormat,
  bytes: Uint8Array,
) => Promise<void>;

export type CheckpointFormat = 'safetensors' | 'bin' | 'gguf';

export interface LoadOptions {
  /** Format of the four linear weights of every block (embeddings, norms and biases stay f32). */
  weightFormat: WeightFormat;
  sink: TensorSink;
  onProgress?: ProgressCallback;
  /**
   * Called once the config is known (config.json or the GGUF metadata) and every tensor has been
   * validated, before the first tensor reaches the sink: e.g. to set up what the sink uploads into.
   */
  begin?: (config: ModelConfig) => void | Promise<void>;
  /** Called when loading fails after the sink received tensors, so it can free them. */
  abort?: (error: unknown) => void | Promise<void>;
  /** Load this checkpoint format when the folder holds several; default: safetensors, bin, gguf. */
  prefer?: CheckpointFormat;
  /**
   * What the weights are for, deciding an untied LM head (Llama's lm_head.weight): 'cls' skips it
   * (the classifier replaces it), 'ntp' requires it; unset, it is loaded when the checkpoint has it.
   */
  objective?: Objective;
  /** Skip tokenizer.json (e.g. the caller has its own). */
  skipTokenizer?: boolean;
  /** Override the per-tensor format policy. */
  formatFor?: (spec: ParamSpec, requested: WeightFormat) => WeightFormat;
  /** Bytes of f32 per conversion chunk (default 16 MiB): bounds the scratch memory. */
  chunkBytes?: number;
  signal?: AbortSignal;
  /** Weight cache: a complete entry is loaded from it; otherwise converted tensors are stored as they stream. */
  cache?: WeightCache;
  /** Overrides parts of the cache key (default: repo = label, revision, hash of the weight files). */
  cacheKey?: Partial<CacheKey>;
}

export interface LoadedTensorInfo {
  name: string;
  shape: number[];
  format: WeightFormat;
  bytes: number;
  sourceDtype: string;
}

export interface LoadedModel {
  config: ModelConfig;
  tokenizer: CodeTokenizer | undefined;
  format: CheckpointFormat;
  /** Weight files read, in order. */
  files: string[];
  tensors: LoadedTensorInfo[];
  /** Tensors in the checkpoint that the engine does not need (tied lm_head, attention-mask buffers). */
  skipped: string[];
  /** Bytes handed to the sink. */
  uploadedBytes: number;
  /** 'hit': all weights from the cache; 'partial': resumed; 'miss': none cached; 'off': no cache. */
  cache: 'hit' | 'partial' | 'miss' | 'off';
}

/**
 * The engine's weight-format policy (as src/engine/model/memory-plan.ts plans the buffers): the four
 * block linears in the requested format; embeddings, norms and biases in f32.
 */
export function defaultFormatFor(spec: ParamSpec, requested: WeightFormat): WeightFormat {
  return spec.kind === 'linear-weight' ? requested : 'f32';
}

interface WeightPlan {
  format: CheckpointFormat;
  files: string[];
}

/** Chooses the weight files from a listing. */
export function chooseWeights(
  listing: ModelFileInfo[],
  prefer?: CheckpointFormat,
  label = 'model',
): WeightPlan {
  const has = new Set(listing.map((f) => f.path));
  const candidates: WeightPlan[] = [];
  if (has.has('model.safetensors.index.json')) {
    candidates.push({ format: 'safetensors', files: ['model.safetensors.index.json'] });
  } else if (has.has('model.safetensors'))
    candidates.push({ format: 'safetensors', files: ['model.safetensors'] });
  if (has.has('pytorch_model.bin.index.json')) {
    candidates.push({ format: 'bin', files: ['pytorch_model.bin.index.json'] });
  } else if (has.has('pytorch_model.bin')) candidates.push({ format: 'bin', files: ['pytorch_model.bin'] });
  const ggufs = listing.map((f) => f.path).filter((p) => p.toLowerCase().endsWith('.gguf'));
  if (ggufs.length > 0) candidates.push({ format: 'gguf', files: [ggufs.sort()[0]] });
  const chosen =
    (prefer && candidates.find((c) => c.format === prefer)) || (!prefer ? candidates[0] : undefined);
  if (!chosen) {
    throw new ModelFormatError(
      'no-weights',
      label,
      prefer
        ? `has no ${prefer} weights (found: ${candidates.map((c) => c.format).join(', ') || 'none'}).`
        : 'has no weights: no model.safetensors, pytorch_model.bin or .gguf file.',
      'Pick a repository or folder with model weights (safetensors, pytorch_model.bin or GGUF).',
    );
  }
  return chosen;
}

/**
 * Normalizes checkpoint names to the *ForCausalLM names the engine uses: `transformer.…` for
 * GPT-BigCode, `model.…` for the Llama family (a bare GPTBigCodeModel / LlamaModel checkpoint omits
 * the prefix).
 */
function normalizeName(name: string, llama: boolean): string {
  if (llama) {
    if (name.startsWith('model.') || name.startsWith('lm_head.')) return name;
    if (/^(embed_tokens|norm|layers\.\d+)\./.test(name)) return `model.${name}`;
    return name;
  }
  if (name.startsWith('transformer.') || name.startsWith('lm_head.')) return name;
  if (/^(wte|wpe|ln_f|h\.\d+)\./.test(name)) return `transformer.${name}`;
  return name;
}

/** FNV-1a over a string, as 16 hex digits (two 32-bit lanes); for compact cache keys. */
function fnv(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    a = Math.imul(a ^ text.charCodeAt(i), 0x01000193) >>> 0;
    b = Math.imul(b ^ text.charCodeAt(i), 0x01000193) >>> 0;
    b = (b + a) >>> 0;
  }
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}

/** The cache key of a load: repo, revision, a hash over the weight files' hashes (or sizes), format. */
export function cacheKeyFor(
  files: ModelFiles,
  listing: ModelFileInfo[],
  format: CheckpointFormat,
  weightFormat: WeightFormat,
): CacheKey {
  const relevant = listing
    .filter((f) =>
      format === 'gguf'
        ? f.path.toLowerCase().endsWith('.gguf')
        : format === 'safetensors'
          ? /\.safetensors(\.index\.json)?$/.test(f.path)
          : /^pytorch_model.*\.bin(\.index\.json)?$/.test(f.path),
    )
    .sort((a, b) => (a.path < b.path ? -1 : 1));
  const ids = relevant.map((f) => `${f.path}:${f.hash ?? `size-${f.size}`}`).join('|');
  return { repo: files.label, revision: files.revision ?? 'local', fileHash: fnv(ids), weightFormat };
}

/** Buffers some checkpoints hold beside the weights (attention masks, rotary frequencies). */
const IGNORABLE = [
  /^transformer\.h\.\d+\.attn\.(masked_)?bias$/,
  /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/,
];

/** config.json's name of each configSummary figure, for messages. */
const CONFIG_FIELDS: Record<
  'gpt_bigcode' | 'llama',
  Record<keyof ReturnType<typeof configSummary>, string>
> = {
  gpt_bigcode: {
    family: 'model_type',
    width: 'n_embd',
    layers: 'n_layer',
    heads: 'n_head',
    kvHeads: 'K/V heads (multi_query)',
    inner: 'n_inner',
    vocab: 'vocab_size',
    maxPositions: 'n_positions',
  },
  llama: {
    family: 'model_type',
    width: 'hidden_size',
    layers: 'num_hidden_layers',
    heads: 'num_attention_heads',
    kvHeads: 'num_key_value_heads',
    inner: 'intermediate_size',
    vocab: 'vocab_size',
    maxPositions: 'max_position_embeddings',
  },
};

/** A family's name for messages. */
const FAMILY_NAMES: Record<string, string> = {
  gpt_bigcode: 'GPT-BigCode',
  llama: 'Llama',
  qwen2: 'Qwen2',
  starcoder2: 'StarCoder2',
};

/**
 * Matches checkpoint tensors to the config's parameters; every problem is a typed error. An untied
 * LM head (Llama's lm_head.weight) is skipped for 'cls', required for 'ntp' and, with no objective,
 * loaded when present.
 */
export function matchTensors(
  tensors: TensorEntry[],
  config: ModelConfig,
  file: string,
  objective?: Objective,
): { plan: { spec: ParamSpec; entry: TensorEntry }[]; skipped: string[] } {
  const d = describeDecoder(config);
  const untiedHead = d.lmHead !== d.tokenEmbedding ? d.lmHead : undefined;
  const present = new Set(tensors.map((t) => normalizeName(t.name, isLlamaFamily(config))));
  const specs = baseParamSpecs(config, false).filter(
    (s) =>
      s.name !== untiedHead || objective === 'ntp' || (objective === undefined && present.has(untiedHead)),
  );
  const byName = new Map<string, TensorEntry>();
  const skipped: string[] = [];
  const specNames = new Set(specs.map((s) => s.name));
  for (const t of tensors) {
    const name = normalizeName(t.name, isLlamaFamily(config));
    if (byName.has(name))
      throw new ModelFormatError('duplicate-tensor', file, `tensor "${name}" appears twice.`);
    if (!specNames.has(name)) {
      if (name === 'lm_head.weight') {
        if (t.shape.join() !== [d.vocab, d.width].join()) {
          throw new ModelFormatError(
            'shape-mismatch',
            file,
            `lm_head.weight is [${t.shape.join(', ')}], expected [${d.vocab}, ${d.width}] from config.json.`,
          );
        }
        skipped.push(name);
        byName.set(name, t);
        continue;
      }
      if (IGNORABLE.some((re) => re.test(name))) {
        skipped.push(name);
        byName.set(name, t);
        continue;
      }
      throw new ModelFormatError(
        'unexpected-tensor',
        file,
        `tensor "${t.name}" is not a ${FAMILY_NAMES[d.family] ?? d.family} parameter for this config (${d.blocks.length} layers).`,
      );
    }
    byName.set(name, t);
  }
  const missing = specs.filter((s) => !byName.has(s.name)).map((s) => s.name);
  if (missing.length > 0) {
    throw new ModelFormatError(
      'missing-tensor',
      file,
      `missing ${missing.length} tensor(s): ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}.`,
    );
  }
  const plan = specs.map((spec) => {
    const entry = byName.get(spec.name)!;
    if (entry.shape.join() !== spec.shape.join()) {
      throw new ModelFormatError(
        'shape-mismatch',
        file,
        `tensor "${spec.name}" is [${entry.shape.join(', ')}] but config.json implies [${spec.shape.join(', ')}].`,
      );
    }
    return { spec, entry };
  });
  return { plan, skipped };
}

async function openIfListed(
  files: ModelFiles,
  listing: ModelFileInfo[],
  path: string,
): Promise<ByteSource | undefined> {
  return listing.some((f) => f.path === path) ? files.open(path) : undefined;
}

/** Streams one tensor: reads rows in chunks, converts, returns the target bytes. */
async function readConverted(
  entry: TensorEntry,
  target: WeightFormat,
  chunkBytes: number,
  progress: ProgressTracker,
): Promise<Uint8Array> {
  const [rows, cols] = rowsCols(entry.shape);
  const same = sameFormat(entry.dtype) === target;
  if (rows <= 1) {
    const bytes = await entry.source.read(entry.offset, entry.byteLength);
    progress.downloadedBytes += bytes.byteLength;
    const out = same ? bytes : fromF32(target, toF32(entry.dtype, bytes, rows, cols), rows, cols);
    progress.convertedBytes += bytes.byteLength;
    return out;
  }
  // Row chunks: bounded scratch for conversion, and bounded reads (finer progress, and over HTTP a
  // dropped connection costs one chunk, not a whole 600 MB embedding).
  const srcRowBytes = sourceBytes(entry.dtype, 1, cols);
  const out = new Uint8Array(weightBytes(target, rows, cols));
  const dstRowBytes = weightBytes(target, 1, cols);
  const chunkRows = Math.max(1, Math.floor(chunkBytes / (same ? srcRowBytes : cols * 4)));
  for (let r = 0; r < rows; r += chunkRows) {
    const n = Math.min(chunkRows, rows - r);
    const src = await entry.source.read(entry.offset + r * srcRowBytes, n * srcRowBytes);
    progress.downloadedBytes += src.byteLength;
    out.set(same ? src : fromF32(target, toF32(entry.dtype, src, n, cols), n, cols), r * dstRowBytes);
    progress.convertedBytes += src.byteLength;
    progress.report('convert', entry.name);
  }
  return out;
}

/** Reads config.json (or GGUF metadata), the tokenizer, and streams every weight into `sink`. */
export function loadModel(modelFiles: ModelFiles, options: LoadOptions): Promise<LoadedModel> {
  return withClosing(modelFiles, (files) => loadModelFrom(files, options, false));
}

export type InspectOptions = Partial<
  Pick<LoadOptions, 'weightFormat' | 'prefer' | 'skipTokenizer' | 'formatFor'>
>;

/**
 * Everything `loadModel` learns before the first weight byte: config, tokenizer, checkpoint format and
 * every tensor validated against the config (`tensors` lists what a load in `weightFormat`, default
 * f32, would hand over; nothing is uploaded). Reads only headers, so a model can be checked and shown
 * before the run that decides its weight format streams it onto the GPU.
 */
export function inspectModel(modelFiles: ModelFiles, options: InspectOptions = {}): Promise<LoadedModel> {
  const sink: TensorSink = async () => {};
  return withClosing(modelFiles, (files) =>
    loadModelFrom(files, { weightFormat: 'f32', ...options, sink }, true),
  );
}

/** Runs `work` on `modelFiles` and closes every source it opened, however it ends. */
async function withClosing<T>(modelFiles: ModelFiles, work: (files: ModelFiles) => Promise<T>): Promise<T> {
  const opened: ByteSource[] = [];
  const files: ModelFiles = {
    label: modelFiles.label,
    revision: modelFiles.revision,
    list: () => modelFiles.list(),
    open: async (path) => {
      const s = await modelFiles.open(path);
      opened.push(s);
      return s;
    },
  };
  try {
    return await work(files);
  } finally {
    await Promise.allSettled(opened.map((s) => s.close?.()));
  }
}

async function loadModelFrom(
  files: ModelFiles,
  options: LoadOptions,
  inspectOnly: boolean,
): Promise<LoadedModel> {
  const listing = await files.list();
  const weights = chooseWeights(listing, options.prefer, files.label);
  let config: ModelConfig | undefined;
  const configSource = await openIfListed(files, listing, 'config.json');
  if (configSource) config = parseConfigJson(await readText(configSource), `${files.label}/config.json`);

  // Weight cache: a complete entry replaces the checkpoint; a partial one resumes it.
  const key = options.cache
    ? { ...cacheKeyFor(files, listing, weights.format, options.weightFormat), ...options.cacheKey }
    : undefined;
  const cached = options.cache && key ? await options.cache.lookup(key) : undefined;
  const cachedByName = new Map((cached?.tensors ?? []).map((t) => [t.name, t]));
  const cacheEntry = (
    t: { name: string; format: WeightFormat; bytes: number; open: () => Promise<ByteSource> },
    shape: number[],
  ): TensorEntry => ({
    name: t.name,
    shape,
    dtype: FORMAT_DTYPE[t.format],
    source: lazySource(t.name, t.bytes, t.open),
    offset: 0,
    byteLength: t.bytes,
  });

  let tensors: TensorEntry[];
  const readFiles: string[] = [];
  const weightSources: ByteSource[] = [];
  if (cached?.complete && config) {
    tensors = cached.tensors.map((t) => cacheEntry(t, t.shape));
  } else {
    const open = async (path: string): Promise<ByteSource> => {
      readFiles.push(path);
      const source = await files.open(path);
      weightSources.push(source);
      return source;
    };
    switch (weights.format) {
      case 'safetensors': {
        const [first] = weights.files;
        if (first.endsWith('.index.json')) {
          const index = parseSafetensorsIndex(await readText(await files.open(first)), first);
          tensors = await readShardedSafetensors(index, open);
        } else {
          tensors = (await readSafetensorsHeader(await open(first))).tensors;
        }
        break;
      }
      case 'bin': {
        const [first] = weights.files;
        if (first.endsWith('.index.json')) {
          const index = parseSafetensorsIndex(await readText(await files.open(first)), first);
          tensors = [];
          const seen = new Set<string>();
          for (const shard of index.shards) {
            for (const t of await readTorchBin(await open(shard))) {
              if (seen.has(t.name)) {
                throw new ModelFormatError(
                  'duplicate-tensor',
                  shard,
                  `tensor "${t.name}" is also in another shard.`,
                );
              }
              seen.add(t.name);
              tensors.push(t);
            }
          }
        } else {
          tensors = await readTorchBin(await open(first));
        }
        break;
      }
      case 'gguf': {
        const g = await readGguf(await open(weights.files[0]));
        tensors = g.tensors;
        // config.json, when the folder has one, is authoritative (activation, token ids, rope
        // scaling); the GGUF's own figures must agree with it.
        if (config) {
          const gc = configSummary(g.config);
          const cc = configSummary(config);
          const diff = (Object.keys(gc) as (keyof typeof gc)[]).filter((k) => gc[k] !== cc[k]);
          if (diff.length > 0) {
            throw new ModelFormatError(
              'shape-mismatch',
              weights.files[0],
              `GGUF metadata disagrees with config.json on ${diff.map((k) => `${CONFIG_FIELDS[cc.family === 'gpt_bigcode' ? 'gpt_bigcode' : 'llama'][k]} (${gc[k]} vs ${cc[k]})`).join(', ')}.`,
            );
          }
        } else config = g.config;
        break;
      }
    }
  }
  if (!config) {
    throw new ModelFormatError(
      'bad-config',
      files.label,
      'has no config.json.',
      'A safetensors or .bin model needs its config.json next to the weights.',
    );
  }

  let tokenizer: CodeTokenizer | undefined;
  if (!options.skipTokenizer) {
    const tj = await openIfListed(files, listing, 'tokenizer.json');
    if (tj) {
      const tc = await openIfListed(files, listing, 'tokenizer_config.json');
      tokenizer = loadTokenizer(await readText(tj), tc ? await readText(tc) : undefined, {
        embeddingRows: config.vocab_size,
        padTokenId: config.pad_token_id,
        eosTokenId: configEosId(config),
        bosTokenId: config.bos_token_id,
      });
    }
  }

  const label = readFiles[0] ?? files.label;
  // An untied LM head is matched even for 'cls': the classifier does not use it, but the weight cache
  // keeps it (so that a later next-token run finds a complete entry); the sink never sees it.
  const cls = options.objective === 'cls';
  const { plan, skipped } = matchTensors(tensors, config, label, cls ? undefined : options.objective);
  const decoder = describeDecoder(config);
  const clsSkips = (name: string): boolean =>
    cls && decoder.lmHead !== decoder.tokenEmbedding && name === decoder.lmHead;
  if (plan.some((p) => clsSkips(p.spec.name))) skipped.push(decoder.lmHead);
  const formatFor = options.formatFor ?? defaultFormatFor;
  const targets = plan.map((p) => formatFor(p.spec, options.weightFormat));
  if (inspectOnly) {
    return {
      config,
      tokenizer,
      format: weights.format,
      files: readFiles,
      tensors: plan
        .map(({ spec, entry }, i) => ({
          name: spec.name,
          shape: spec.shape,
          format: targets[i],
          bytes: weightBytes(targets[i], ...rowsCols(spec.shape)),
          sourceDtype: entry.dtype,
        }))
        .filter((t) => !clsSkips(t.name)),
      skipped,
      uploadedBytes: 0,
      cache: 'off',
    };
  }
  // Tensors already in a partial cache entry (right format and size) are read from there.
  let fromCache = 0;
  if (cached && !cached.complete) {
    plan.forEach((p, i) => {
      const c = cachedByName.get(p.spec.name);
      if (c && c.format === targets[i] && c.bytes === weightBytes(targets[i], ...rowsCols(p.spec.shape))) {
        p.entry = cacheEntry(c, p.spec.shape);
        fromCache++;
      }
    });
  } else if (cached?.complete) fromCache = plan.length;
  const cacheState: LoadedModel['cache'] = !options.cache
    ? 'off'
    : cached?.complete && fromCache === plan.length
      ? 'hit'
      : fromCache > 0
        ? 'partial'
        : 'miss';
  await options.begin?.(config);
  let writer: CacheWriter | undefined;
  if (options.cache && key && cacheState !== 'hit') {
    const cacheTotal = plan.reduce((s, p, i) => s + weightBytes(targets[i], ...rowsCols(p.spec.shape)), 0);
    writer = await options.cache.writer(key, cacheTotal);
  }
  // Without a cache to fill, the head 'cls' skips is not read at all.
  const streamed = writer ? plan : plan.filter((p) => !clsSkips(p.spec.name));
  const uploaded = plan.filter((p) => !clsSkips(p.spec.name));
  // Stream in file order (shards in the order they were opened, cached tensors first): sequential
  // reads on disk, fewer seeks on the network.
  const rank = (s: ByteSource): number => weightSources.indexOf(s);
  const order = [...streamed].sort((a, b) =>
    a.entry.source === b.entry.source
      ? a.entry.offset - b.entry.offset
      : rank(a.entry.source) - rank(b.entry.source),
  );
  const totalBytes = streamed.reduce((s, p) => s + p.entry.byteLength, 0);
  const progress = new ProgressTracker(totalBytes, streamed.length, options.onProgress);
  const targetOf = new Map(plan.map((p, i) => [p.spec.name, targets[i]]));
  const uploadTotal = uploaded.reduce(
    (s, p) => s + weightBytes(targetOf.get(p.spec.name)!, ...rowsCols(p.spec.shape)),
    0,
  );
  progress.setUploadTotal(uploadTotal);
  const cacheFrom = new Set(
    plan.filter((p) => p.entry.offset === 0 && isCacheSource(p.entry.source)).map((p) => p.spec.name),
  );
  progress.report('metadata');

  const loaded: LoadedTensorInfo[] = [];
  const cachedOnly: CachedTensor[] = [];
  let sent = 0;
  try {
    for (const { spec, entry } of order) {
      options.signal?.throwIfAborted();
      const format = targetOf.get(spec.name)!;
      progress.report('download', spec.name);
      const fromCacheNow = cacheFrom.has(spec.name);
      const bytes = await readConverted(entry, format, options.chunkBytes ?? 16 << 20, progress);
      if (fromCacheNow) progress.cachedBytes += entry.byteLength;
      else if (writer) await writer.put(spec.name, spec.shape, format, bytes);
      if (clsSkips(spec.name)) {
        cachedOnly.push({ name: spec.name, shape: spec.shape, format, bytes: bytes.byteLength });
        progress.tensorsDone++;
        continue;
      }
      progress.report('upload', spec.name);
      sent++;
      await options.sink(spec.name, spec.shape, format, bytes);
      progress.uploadedBytes += bytes.byteLength;
      progress.tensorsDone++;
      loaded.push({
        name: spec.name,
        shape: spec.shape,
        format,
        bytes: bytes.byteLength,
        sourceDtype: entry.dtype,
      });
    }
    if (writer) {
      await writer.commit([
        ...loaded.map((t): CachedTensor => ({
          name: t.name,
          shape: t.shape,
          format: t.format,
          bytes: t.bytes,
        })),
        ...cachedOnly,
      ]);
    }
  } catch (err) {
    if (sent > 0) await options.abort?.(err);
    throw err;
  }
  progress.report('done');
  return {
    config,
    tokenizer,
    format: weights.format,
    files: readFiles,
    tensors: loaded,
    skipped,
    uploadedBytes: progress.uploadedBytes,
    cache: cacheState,
  };
}

const FORMAT_DTYPE: Record<WeightFormat, TensorEntry['dtype']> = {
  f32: 'F32',
  f16: 'F16',
  q8_0: 'Q8_0',
  q4_0: 'Q4_0',
};

const CACHE_SOURCE = Symbol('vulnlab.cacheSource');

function isCacheSource(s: ByteSource): boolean {
  return (s as ByteSource & { [CACHE_SOURCE]?: boolean })[CACHE_SOURCE] === true;
}

/** A cached tensor file, opened for each read and closed after (no handle is held between tensors). */
function lazySource(name: string, size: number, open: () => Promise<ByteSource>): ByteSource {
  return {
    name: `cache:${name}`,
    size,
    [CACHE_SOURCE]: true,
    async read(offset: number, length: number) {
      const s = await open();
      try {
        return await s.read(offset, length);
      } finally {
        await s.close?.();
      }
    },
  } as ByteSource;
}
