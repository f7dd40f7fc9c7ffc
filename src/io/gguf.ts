/**
 * GGUF checkpoints of llama.cpp's `starcoder` architecture. Parsing is done by @huggingface/gguf
 * (fed from any ByteSource through a Range-answering fetch shim); tensor names are mapped to their
 * Hugging Face GPT-BigCode names and shapes ([out, in]); F32/F16/Q8_0/Q4_0 map straight onto the
 * engine's formats, every other type and every other architecture is refused by name.
 * A small GGUF v3 writer is included (demo model, tests).
 */
import { gguf, GGMLQuantizationType, type GGUFParseOutput } from '@huggingface/gguf';
import { resolveConfig, type ResolvedConfig } from '../engine/model/config.ts';
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

const BLOCK_MAP: Record<string, string> = {
  attn_norm: 'ln_1',
  attn_qkv: 'attn.c_attn',
  attn_output: 'attn.c_proj',
  ffn_norm: 'ln_2',
  ffn_up: 'mlp.c_fc',
  ffn_down: 'mlp.c_proj',
};
const GLOBAL_MAP: Record<string, string> = {
  token_embd: 'transformer.wte',
  position_embd: 'transformer.wpe',
  output_norm: 'transformer.ln_f',
  output: 'lm_head',
};

/** llama.cpp starcoder tensor name → Hugging Face name (undefined when unknown). */
export function ggufToHfName(name: string): string | undefined {
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (m) return BLOCK_MAP[m[2]] ? `transformer.h.${m[1]}.${BLOCK_MAP[m[2]]}.${m[3]}` : undefined;
  const g = /^([a-z_]+)\.(weight|bias)$/.exec(name);
  if (g && GLOBAL_MAP[g[1]]) return `${GLOBAL_MAP[g[1]]}.${g[2]}`;
  return undefined;
}

/** Hugging Face name → llama.cpp starcoder tensor name. */
export function hfToGgufName(name: string): string {
  for (const [k, v] of Object.entries(GLOBAL_MAP)) {
    if (name === `${v}.weight`) return `${k}.weight`;
    if (name === `${v}.bias`) return `${k}.bias`;
  }
  const m = /^transformer\.h\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  if (m) {
    const k = Object.entries(BLOCK_MAP).find(([, v]) => v === m[2]);
    if (k) return `blk.${m[1]}.${k[0]}.${m[3]}`;
  }
  throw new Error(`hfToGgufName: no GGUF name for ${name}`);
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
  config: ResolvedConfig;
  tensors: TensorEntry[];
  metadata: Record<string, unknown>;
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
  const arch = md['general.architecture'];
  if (arch !== 'starcoder') {
    throw new UnsupportedModelError(
      'unsupported-architecture',
      `${file}: GGUF architecture "${String(arch)}" is not supported; only llama.cpp's "starcoder" (GPT-BigCode) is.`,
      'Use a StarCoder/WizardCoder GGUF, or the safetensors/.bin checkpoint of the model.',
    );
  }
  const num = (k: string): number => {
    const v = md[`starcoder.${k}`];
    if (typeof v !== 'number' && typeof v !== 'bigint') {
      throw new ModelFormatError('bad-header', file, `metadata starcoder.${k} is missing.`);
    }
    return Number(v);
  };
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
    const hf = ggufToHfName(info.name);
    if (!hf) {
      throw new ModelFormatError(
        'unexpected-tensor',
        file,
        `tensor ${info.name} is not part of a starcoder model.`,
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
  const wte = tensors.find((t) => t.name === 'transformer.wte.weight');
  if (!wte) throw new ModelFormatError('missing-tensor', file, 'token_embd.weight is missing.');
  const nHead = num('attention.head_count');
  const kv = md['starcoder.attention.head_count_kv'];
  const kvHeads = kv === undefined ? nHead : Number(kv);
  if (kvHeads !== 1 && kvHeads !== nHead) {
    throw new UnsupportedModelError(
      'unsupported-config',
      `${file}: ${kvHeads} KV heads for ${nHead} query heads (grouped-query attention) is not GPT-BigCode.`,
      'Use a StarCoder/WizardCoder model (multi-query or multi-head attention).',
    );
  }
  const eps = md['starcoder.attention.layer_norm_epsilon'];
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
    layer_norm_epsilon: typeof eps === 'number' ? eps : 1e-5,
    bos_token_id: numOrNull(md['tokenizer.ggml.bos_token_id']),
    eos_token_id: numOrNull(md['tokenizer.ggml.eos_token_id']),
    pad_token_id: numOrNull(md['tokenizer.ggml.padding_token_id']),
  });
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    if (config[k] != null && (config[k] as number) >= config.vocab_size) config[k] = null;
  }
  return { config, tensors, metadata: md };
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
