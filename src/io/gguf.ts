/**
 * GGUF checkpoints of llama.cpp's `starcoder` (GPT-BigCode), `llama`, `qwen2` and `starcoder2`
 * architectures. Parsing is done by @huggingface/gguf (fed from any ByteSource through a
 * Range-answering fetch shim); tensor names are mapped to their Hugging Face names and shapes
 * ([out, in]); F32/F16/Q8_0/Q4_0 map straight onto the engine's formats, every other type and every
 * other architecture is refused by name. For `llama`, llama.cpp's converter permutes the rows of
 * attn_q / attn_k (each head's rotary halves interleaved, convert_hf_to_gguf.py LlamaModel.permute);
 * those tensors are read through a view that restores Hugging Face's row order (whole rows move, so
 * Q8_0/Q4_0 blocks pass through unchanged).
 * A small GGUF v3 writer is included (demo model, tests).
 */
import { gguf, GGMLQuantizationType, type GGUFParseOutput } from '@huggingface/gguf';
import { resolveConfig } from '../engine/model/config.ts';
import type { ModelConfig } from '../engine/model/decoder.ts';
import {
  LLAMA_FAMILIES,
  resolveLlamaFamily,
  type LlamaFamily,
  type LlamaFamilyConfig,
} from '../engine/model/llama-family.ts';
import { ConfigError } from '../engine/model/config.ts';
import type { SourceDtype } from './convert.ts';
import { ModelFormatError, UnsupportedModelError } from './errors.ts';
import type { ByteSource } from './source.ts';
import { numel, type TensorEntry } from './tensors.ts';

const GGML_TYPES: Partial<Record<number, SourceDtype>> = {
  [GGMLQuantizationType.F32]: 'F32',
  [GGMLQuantizationType.F16]: 'F16',
  [GGMLQuantizationType.Q8_0]: 'Q8_0',
  [GGMLQuantizationType.Q4_0]: 'Q4_0',
};
const TYPE_IDS: Record<'F32' | 'F16' | 'Q8_0' | 'Q4_0', number> = {
  F32: GGMLQuantizationType.F32,
  F16: GGMLQuantizationType.F16,
  Q8_0: GGMLQuantizationType.Q8_0,
  Q4_0: GGMLQuantizationType.Q4_0,
};

/** llama.cpp architectures the lab reads. */
export type GgufArch = 'starcoder' | LlamaFamily;
export const GGUF_ARCHS: readonly GgufArch[] = ['starcoder', ...LLAMA_FAMILIES];

interface NameMap {
  block: Record<string, string>;
  global: Record<string, string>;
  /** Hugging Face's block prefix. */
  prefix: string;
}

const STARCODER_NAMES: NameMap = {
  block: {
    attn_norm: 'ln_1',
    attn_qkv: 'attn.c_attn',
    attn_output: 'attn.c_proj',
    ffn_norm: 'ln_2',
    ffn_up: 'mlp.c_fc',
    ffn_down: 'mlp.c_proj',
  },
  global: {
    token_embd: 'transformer.wte',
    position_embd: 'transformer.wpe',
    output_norm: 'transformer.ln_f',
    output: 'lm_head',
  },
  prefix: 'transformer.h',
};

const LLAMA_GLOBAL = { token_embd: 'model.embed_tokens', output_norm: 'model.norm', output: 'lm_head' };
const LLAMA_ATTENTION = {
  attn_norm: 'input_layernorm',
  attn_q: 'self_attn.q_proj',
  attn_k: 'self_attn.k_proj',
  attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj',
  ffn_norm: 'post_attention_layernorm',
};
/** llama and qwen2 (SwiGLU MLP), starcoder2 (c_fc / c_proj MLP): LlamaModel-style names. */
const LLAMA_NAMES: NameMap = {
  block: { ...LLAMA_ATTENTION, ffn_gate: 'mlp.gate_proj', ffn_up: 'mlp.up_proj', ffn_down: 'mlp.down_proj' },
  global: LLAMA_GLOBAL,
  prefix: 'model.layers',
};
const STARCODER2_NAMES: NameMap = {
  block: { ...LLAMA_ATTENTION, ffn_up: 'mlp.c_fc', ffn_down: 'mlp.c_proj' },
  global: LLAMA_GLOBAL,
  prefix: 'model.layers',
};
const NAMES: Record<GgufArch, NameMap> = {
  starcoder: STARCODER_NAMES,
  llama: LLAMA_NAMES,
  qwen2: LLAMA_NAMES,
  starcoder2: STARCODER2_NAMES,
};

/** llama.cpp tensor name → Hugging Face name for `arch` (undefined when unknown). */
export function ggufToHfName(name: string, arch: GgufArch = 'starcoder'): string | undefined {
  const map = NAMES[arch];
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (m) return map.block[m[2]] ? `${map.prefix}.${m[1]}.${map.block[m[2]]}.${m[3]}` : undefined;
  const g = /^([a-z_]+)\.(weight|bias)$/.exec(name);
  if (g && map.global[g[1]]) return `${map.global[g[1]]}.${g[2]}`;
  return undefined;
}

/** Hugging Face name → llama.cpp tensor name for `arch`. */
export function hfToGgufName(name: string, arch: GgufArch = 'starcoder'): string {
  const map = NAMES[arch];
  for (const [k, v] of Object.entries(map.global)) {
    if (name === `${v}.weight`) return `${k}.weight`;
    if (name === `${v}.bias`) return `${k}.bias`;
  }
  const m = /^(.+)\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  if (m && m[1] === map.prefix) {
    const k = Object.entries(map.block).find(([, v]) => v === m[3]);
    if (k) return `blk.${m[2]}.${k[0]}.${m[4]}`;
  }
  throw new Error(`hfToGgufName: no GGUF ${arch} name for ${name}`);
}

/**
 * Row `r` of a Hugging Face q/k projection (`heads` heads of `rows / heads` rows) is row
 * `llamaPermutedRow(r)` of llama.cpp's: the converter's permute interleaves each head's two rotary
 * halves (HF row s·hd/2 + i is GGUF row 2i + s).
 */
export function llamaPermutedRow(r: number, rows: number, heads: number): number {
  const hd = rows / heads;
  const half = hd / 2;
  const h = Math.floor(r / hd);
  const k = r % hd;
  return h * hd + 2 * (k % half) + Math.floor(k / half);
}

/**
 * A view of a tensor's bytes with its rows in Hugging Face's order (see llamaPermutedRow). Reads
 * whole heads from the file (a head's rows are contiguous in both orders) and reorders them.
 */
function unpermutedRows(
  source: ByteSource,
  offset: number,
  byteLength: number,
  rows: number,
  heads: number,
): ByteSource {
  const rowBytes = byteLength / rows;
  const hd = rows / heads;
  return {
    name: source.name,
    size: byteLength,
    async read(at: number, length: number): Promise<Uint8Array> {
      if (length === 0) return new Uint8Array(0);
      const first = Math.floor(at / rowBytes);
      const last = Math.floor((at + length - 1) / rowBytes);
      const h0 = Math.floor(first / hd);
      const h1 = Math.floor(last / hd);
      const block = await source.read(offset + h0 * hd * rowBytes, (h1 - h0 + 1) * hd * rowBytes);
      const out = new Uint8Array((last - first + 1) * rowBytes);
      for (let r = first; r <= last; r++) {
        const g = llamaPermutedRow(r, rows, heads) - h0 * hd;
        out.set(block.subarray(g * rowBytes, (g + 1) * rowBytes), (r - first) * rowBytes);
      }
      const skip = at - first * rowBytes;
      return out.subarray(skip, skip + length);
    },
  };
}

/** A fetch that answers Range requests from a ByteSource, so @huggingface/gguf can parse any source. */
export function byteSourceFetch(source: ByteSource): typeof fetch {
  return (async (_input: unknown, init?: { headers?: Record<string, string> }) => {
    const range = /bytes=(\d+)-(\d+)/.exec(init?.headers?.Range ?? '');
    const start = range ? Number(range[1]) : 0;
    const end = Math.min(range ? Number(range[2]) : source.size - 1, source.size - 1);
    const body = start <= end ? await source.read(start, end - start + 1) : new Uint8Array(0);
    return new Response(body as Uint8Array<ArrayBuffer>, {
      status: 206,
      headers: { 'Content-Range': `bytes ${start}-${end}/${source.size}` },
    });
  }) as typeof fetch;
}

export interface GgufCheckpoint {
  config: ModelConfig;
  tensors: TensorEntry[];
  metadata: Record<string, unknown>;
  arch: GgufArch;
}

/** Bytes of a GGUF tensor with `ne` (innermost first) of a supported type. */
function ggufBytes(dtype: SourceDtype, ne: number[]): number {
  const n = numel(ne);
  switch (dtype) {
    case 'F32':
      return n * 4;
    case 'F16':
    case 'BF16':
      return n * 2;
    case 'Q8_0':
      return (n / 32) * 34;
    case 'Q4_0':
      return (n / 32) * 18;
  }
}

export async function readGguf(source: ByteSource): Promise<GgufCheckpoint> {
  const file = source.name;
  let parsed: GGUFParseOutput;
  try {
    parsed = await gguf(`http://vulnlab.invalid/${encodeURIComponent(file)}`, {
      fetch: byteSourceFetch(source),
    });
  } catch (cause) {
    if (cause instanceof ModelFormatError) throw cause;
    throw new ModelFormatError(
      'bad-header',
      file,
      `is not a readable GGUF file (${cause instanceof Error ? cause.message : String(cause)}).`,
    );
  }
  const md = parsed.metadata as unknown as Record<string, unknown>;
  const arch = md['general.architecture'] as GgufArch;
  if (!GGUF_ARCHS.includes(arch)) {
    throw new UnsupportedModelError(
      'unsupported-architecture',
      `${file}: GGUF architecture "${String(arch)}" is not supported; only llama.cpp's ${GGUF_ARCHS.map((a) => `"${a}"`).join(', ')} are.`,
      'Use a StarCoder/WizardCoder, Llama, Qwen2 or StarCoder2 GGUF, or the safetensors/.bin checkpoint of the model.',
    );
  }
  const dataStart = Number(parsed.tensorDataOffset);
  const tensors: TensorEntry[] = [];
  const seen = new Set<string>();
  for (const info of parsed.tensorInfos) {
    const dtype = GGML_TYPES[info.dtype];
    if (!dtype) {
      throw new UnsupportedModelError(
        'unsupported-quant',
        `${file}: tensor ${info.name} is ${GGMLQuantizationType[info.dtype] ?? `type ${info.dtype}`}; only F32, F16, Q8_0 and Q4_0 GGUF tensors are supported.`,
        'Download the Q8_0 or Q4_0 (or F16) GGUF of the model, or load its safetensors and let the lab quantize.',
      );
    }
    const hf = ggufToHfName(info.name, arch);
    if (!hf) {
      if (info.name === 'rope_freqs.weight') {
        throw new UnsupportedModelError(
          'unsupported-config',
          `${file}: tensor rope_freqs.weight (Llama 3.1-style rope scaling) is not supported; the lab implements linear rope scaling only.`,
          'Use a model without rope scaling, or with linear scaling.',
        );
      }
      throw new ModelFormatError(
        'unexpected-tensor',
        file,
        `tensor ${info.name} is not part of a ${arch} model.`,
      );
    }
    if (seen.has(hf))
      throw new ModelFormatError('duplicate-tensor', file, `tensor ${info.name} appears twice.`);
    seen.add(hf);
    const ne = info.shape.map(Number);
    if ((dtype === 'Q8_0' || dtype === 'Q4_0') && ne[0] % 32 !== 0) {
      throw new ModelFormatError(
        'shape-mismatch',
        file,
        `${dtype} tensor ${info.name} has rows of ${ne[0]} (not /32).`,
      );
    }
    const byteLength = ggufBytes(dtype, ne);
    const offset = dataStart + Number(info.offset);
    if (offset + byteLength > source.size) {
      throw new ModelFormatError(
        'offset-out-of-range',
        file,
        `tensor ${info.name} (${byteLength} bytes at ${offset}) extends past the end of the file (${source.size} bytes).`,
      );
    }
    tensors.push({ name: hf, shape: [...ne].reverse(), dtype, source, offset, byteLength });
  }
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i - 1].offset + sorted[i - 1].byteLength > sorted[i].offset) {
      throw new ModelFormatError(
        'overlapping-tensors',
        file,
        `tensors ${sorted[i - 1].name} and ${sorted[i].name} overlap in the data section.`,
      );
    }
  }
  const embedding = arch === 'starcoder' ? 'transformer.wte.weight' : 'model.embed_tokens.weight';
  const wte = tensors.find((t) => t.name === embedding);
  if (!wte) throw new ModelFormatError('missing-tensor', file, 'token_embd.weight is missing.');
  const num = (k: string): number => {
    const v = md[`${arch}.${k}`];
    if (typeof v !== 'number' && typeof v !== 'bigint') {
      throw new ModelFormatError('bad-header', file, `metadata ${arch}.${k} is missing.`);
    }
    return Number(v);
  };
  const opt = (k: string): number | undefined => {
    const v = md[`${arch}.${k}`];
    return typeof v === 'number' || typeof v === 'bigint' ? Number(v) : undefined;
  };
  const tokenIds = {
    bos_token_id: numOrNull(md['tokenizer.ggml.bos_token_id']),
    eos_token_id: numOrNull(md['tokenizer.ggml.eos_token_id']),
    pad_token_id: numOrNull(md['tokenizer.ggml.padding_token_id']),
  };
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    if (tokenIds[k] != null && tokenIds[k] >= wte.shape[0]) tokenIds[k] = null;
  }
  if (arch === 'starcoder') {
    const nHead = num('attention.head_count');
    const kvHeads = opt('attention.head_count_kv') ?? nHead;
    if (kvHeads !== 1 && kvHeads !== nHead) {
      throw new UnsupportedModelError(
        'unsupported-config',
        `${file}: ${kvHeads} KV heads for ${nHead} query heads (grouped-query attention) is not GPT-BigCode.`,
        'Use a StarCoder/WizardCoder model (multi-query or multi-head attention).',
      );
    }
    const config = resolveConfig({
      vocab_size: wte.shape[0],
      n_embd: num('embedding_length'),
      n_layer: num('block_count'),
      n_head: nHead,
      n_inner: num('feed_forward_length'),
      n_positions: num('context_length'),
      multi_query: kvHeads === 1,
      // llama.cpp's starcoder graph uses ggml_gelu, the tanh approximation.
      activation_function: 'gelu_pytorch_tanh',
      layer_norm_epsilon: opt('attention.layer_norm_epsilon') ?? 1e-5,
      ...tokenIds,
    });
    return { config, tensors, metadata: md, arch };
  }
  const config = llamaFamilyConfig(arch, md, tensors, wte.shape[0], num, opt, file, tokenIds);
  if (arch === 'llama') {
    // Undo the converter's permutation of q and k (weights and, with attention_bias, biases).
    const heads = { q_proj: num('attention.head_count'), k_proj: opt('attention.head_count_kv') };
    for (const [i, t] of tensors.entries()) {
      const m = /\.self_attn\.(q_proj|k_proj)\.(weight|bias)$/.exec(t.name);
      if (!m) continue;
      const n = m[1] === 'q_proj' ? heads.q_proj : (heads.k_proj ?? heads.q_proj);
      const rows = t.shape[0];
      if (rows % n !== 0 || (rows / n) % 2 !== 0) {
        throw new ModelFormatError(
          'shape-mismatch',
          file,
          `${t.name} has ${rows} rows, not ${n} heads of an even size.`,
        );
      }
      tensors[i] = {
        ...t,
        source: unpermutedRows(t.source, t.offset, t.byteLength, rows, n),
        offset: 0,
      };
    }
  }
  return { config, tensors, metadata: md, arch };
}

/** A Llama-family config from llama.cpp's metadata; the tensors present decide biases and tying. */
function llamaFamilyConfig(
  arch: LlamaFamily,
  md: Record<string, unknown>,
  tensors: TensorEntry[],
  vocab: number,
  num: (k: string) => number,
  opt: (k: string) => number | undefined,
  file: string,
  tokenIds: { bos_token_id: number | null; eos_token_id: number | null; pad_token_id: number | null },
): LlamaFamilyConfig {
  const has = (name: string) => tensors.some((t) => t.name === name);
  const width = num('embedding_length');
  const nHead = num('attention.head_count');
  const headDim = opt('attention.key_length') ?? width / nHead;
  const ropeDims = opt('rope.dimension_count');
  const unsupported: string[] = [];
  if (ropeDims !== undefined && ropeDims !== headDim) {
    unsupported.push(
      `${arch}.rope.dimension_count ${ropeDims} (rotary positions on part of a head, ${headDim} wide)`,
    );
  }
  const scalingType = md[`${arch}.rope.scaling.type`];
  let ropeScaling: LlamaFamilyConfig['rope_scaling'] = null;
  const factor = opt('rope.scaling.factor') ?? opt('rope.scale_linear');
  if (
    scalingType === 'linear' ||
    (scalingType === undefined && md[`${arch}.rope.scale_linear`] !== undefined)
  ) {
    ropeScaling = { type: 'linear', factor };
  } else if (scalingType !== undefined && scalingType !== 'none') {
    unsupported.push(`${arch}.rope.scaling.type "${String(scalingType)}" (supported: "linear", "none")`);
  }
  if (unsupported.length > 0) {
    throw new UnsupportedModelError(
      'unsupported-config',
      `${file}: unsupported ${arch} settings: ${unsupported.join('; ')}.`,
      'Pick a model without these options.',
    );
  }
  const starcoder2 = arch === 'starcoder2';
  const attentionBias = has('model.layers.0.self_attn.q_proj.bias');
  const config: LlamaFamilyConfig = {
    model_type: arch,
    vocab_size: vocab,
    hidden_size: width,
    intermediate_size: num('feed_forward_length'),
    num_hidden_layers: num('block_count'),
    num_attention_heads: nHead,
    num_key_value_heads: opt('attention.head_count_kv') ?? nHead,
    head_dim: headDim,
    // llama.cpp's starcoder2 graph uses ggml_gelu, the tanh approximation.
    hidden_act: starcoder2 ? 'gelu_pytorch_tanh' : 'silu',
    max_position_embeddings: num('context_length'),
    ...(starcoder2
      ? { norm_epsilon: opt('attention.layer_norm_epsilon') ?? 1e-5 }
      : { rms_norm_eps: opt('attention.layer_norm_rms_epsilon') ?? 1e-6 }),
    rope_theta: opt('rope.freq_base') ?? 10000,
    rope_scaling: ropeScaling,
    ...(arch === 'llama'
      ? { attention_bias: attentionBias, mlp_bias: has('model.layers.0.mlp.gate_proj.bias') }
      : {}),
    ...(starcoder2 ? { use_bias: attentionBias } : {}),
    // StarCoder2's window (Qwen2's GGUF carries none: llama.cpp attends to everything there).
    sliding_window: starcoder2 ? (opt('attention.sliding_window') ?? null) : null,
    tie_word_embeddings: !has('lm_head.weight'),
    ...tokenIds,
  };
  try {
    resolveLlamaFamily(config);
  } catch (err) {
    if (err instanceof ConfigError) throw new ModelFormatError('bad-header', file, err.message);
    throw err;
  }
  return config;
}

function numOrNull(v: unknown): number | null {
  return typeof v === 'number' || typeof v === 'bigint' ? Number(v) : null;
}

// ---- writer --------------------------------------------------------------------------------------

export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: string[] };

export interface GgufWriteTensor {
  /** GGUF name (e.g. `blk.0.attn_qkv.weight`). */
  name: string;
  /** Hugging Face shape (outermost first); written as ne (innermost first). */
  shape: number[];
  type: 'F32' | 'F16' | 'Q8_0' | 'Q4_0';
  data: Uint8Array;
  /** Raw ggml type id written instead of `type`'s (tests write types the reader must refuse). */
  typeId?: number;
}

/** Serializes a GGUF v3 file (little-endian, alignment 32). */
export function writeGguf(
  metadata: Record<string, GgufValue>,
  tensors: GgufWriteTensor[],
  alignment = 32,
): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  let size = 0;
  const push = (b: Uint8Array): void => {
    parts.push(b);
    size += b.byteLength;
  };
  const u32 = (v: number): void => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    push(b);
  };
  const u64 = (v: number): void => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    push(b);
  };
  const str = (s: string): void => {
    const b = enc.encode(s);
    u64(b.byteLength);
    push(b);
  };
  push(enc.encode('GGUF'));
  u32(3);
  u64(tensors.length);
  u64(Object.keys(metadata).length);
  for (const [key, v] of Object.entries(metadata)) {
    str(key);
    switch (v.type) {
      case 'u32':
        u32(4);
        u32(v.value);
        break;
      case 'i32': {
        u32(5);
        const b = new Uint8Array(4);
        new DataView(b.buffer).setInt32(0, v.value, true);
        push(b);
        break;
      }
      case 'f32': {
        u32(6);
        const b = new Uint8Array(4);
        new DataView(b.buffer).setFloat32(0, v.value, true);
        push(b);
        break;
      }
      case 'bool':
        u32(7);
        push(new Uint8Array([v.value ? 1 : 0]));
        break;
      case 'string':
        u32(8);
        str(v.value);
        break;
      case 'string[]':
        u32(9);
        u32(8);
        u64(v.value.length);
        for (const s of v.value) str(s);
        break;
    }
  }
  const pad = (n: number): number => Math.ceil(n / alignment) * alignment;
  let dataOffset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    str(t.name);
    u32(t.shape.length);
    for (const d of [...t.shape].reverse()) u64(d);
    u32(t.typeId ?? TYPE_IDS[t.type]);
    u64(dataOffset);
    offsets.push(dataOffset);
    dataOffset = pad(dataOffset + t.data.byteLength);
  }
  const dataStart = pad(size);
  const out = new Uint8Array(dataStart + dataOffset);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  tensors.forEach((t, i) => out.set(t.data, dataStart + offsets[i]));
  return out;
}
