/**
 * safetensors: header parsing with validation, per-tensor streaming through a ByteSource, the sharded
 * `model.safetensors.index.json`, and a writer (demo model, PEFT adapter export).
 *
 * Layout: u64 LE header length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]},
 * "__metadata__"?: {str: str}}`, then the data; offsets are relative to the start of the data.
 */
import type { SourceDtype } from './convert.ts';
import { ModelFormatError, UnsupportedModelError } from './errors.ts';
import type { ByteSource } from './source.ts';
import { numel, type TensorEntry } from './tensors.ts';

/** Header sizes above this are refused (real headers are well under 1 MiB even for 15B models). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};
const SUPPORTED: readonly string[] = ['F32', 'F16', 'BF16'];

export interface SafetensorsHeader {
  tensors: TensorEntry[];
  metadata: Record<string, string>;
  /** Absolute offset of the data section. */
  dataStart: number;
}

/**
 * Parses and validates the header of a safetensors file. Every tensor's byte range is checked to lie
 * inside the data section, to match dtype × shape, and not to overlap another tensor.
 */
export async function readSafetensorsHeader(source: ByteSource): Promise<SafetensorsHeader> {
  const file = source.name;
  if (source.size < 8) {
    throw new ModelFormatError(
      'truncated',
      file,
      `is ${source.size} bytes, too short for a safetensors header.`,
    );
  }
  const lenBytes = await source.read(0, 8);
  const n = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(source.size - 8)) {
    throw new ModelFormatError(
      'header-out-of-range',
      file,
      `header length ${n} goes beyond the end of the file (${source.size} bytes); the file is truncated or not safetensors.`,
    );
  }
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new ModelFormatError('bad-header', file, `header length ${n} is implausibly large.`);
  }
  const headerLen = Number(n);
  const text = new TextDecoder('utf-8', { fatal: false }).decode(await source.read(8, headerLen));
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ModelFormatError(
      'bad-header',
      file,
      `header is not valid JSON (${cause instanceof Error ? cause.message : String(cause)}).`,
    );
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelFormatError('bad-header', file, 'header is not a JSON object.');
  }
  const duplicate = firstDuplicateTopLevelKey(text);
  if (duplicate !== undefined) {
    throw new ModelFormatError(
      'duplicate-tensor',
      file,
      `tensor "${duplicate}" appears twice in the header.`,
    );
  }
  const dataStart = 8 + headerLen;
  const dataSize = source.size - dataStart;
  const tensors: TensorEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = (value ?? {}) as Record<string, string>;
      continue;
    }
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (
      typeof info !== 'object' ||
      info === null ||
      typeof info.dtype !== 'string' ||
      !Array.isArray(info.shape) ||
      !info.shape.every((d) => Number.isSafeInteger(d) && d >= 0) ||
      !Array.isArray(info.data_offsets) ||
      info.data_offsets.length !== 2 ||
      !info.data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0)
    ) {
      throw new ModelFormatError('bad-header', file, `entry "${name}" is not {dtype, shape, data_offsets}.`);
    }
    const [begin, end] = info.data_offsets as [number, number];
    const shape = info.shape as number[];
    if (!(info.dtype in DTYPE_BYTES)) {
      throw new ModelFormatError('bad-header', file, `tensor "${name}" has unknown dtype ${info.dtype}.`);
    }
    if (begin > end || end > dataSize) {
      throw new ModelFormatError(
        'offset-out-of-range',
        file,
        `tensor "${name}" data_offsets [${begin}, ${end}] lie outside the data section (${dataSize} bytes).`,
      );
    }
    const expected = numel(shape) * DTYPE_BYTES[info.dtype];
    if (end - begin !== expected) {
      throw new ModelFormatError(
        'dtype-mismatch',
        file,
        `tensor "${name}" is ${end - begin} bytes but ${info.dtype} [${shape.join(', ')}] needs ${expected}.`,
      );
    }
    if (!SUPPORTED.includes(info.dtype)) {
      throw new UnsupportedModelError(
        'unsupported-dtype',
        `${file}: tensor "${name}" has dtype ${info.dtype}; only F32, F16 and BF16 are supported.`,
        'Use a checkpoint saved in float32, float16 or bfloat16.',
      );
    }
    tensors.push({
      name,
      shape,
      dtype: info.dtype as SourceDtype,
      source,
      offset: dataStart + begin,
      byteLength: end - begin,
    });
  }
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (cur.byteLength > 0 && prev.offset + prev.byteLength > cur.offset) {
      throw new ModelFormatError(
        'overlapping-tensors',
        file,
        `tensors "${prev.name}" and "${cur.name}" overlap in the data section.`,
      );
    }
  }
  return { tensors, metadata, dataStart };
}

/**
 * Finds a key that occurs twice at the top level of a JSON object text (JSON.parse keeps the last one
 * silently). Assumes `text` already parsed as JSON.
 */
export function firstDuplicateTopLevelKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let i = 0;
  let expectKey = false;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === '{' || c === '[') {
      depth++;
      if (depth === 1 && c === '{') expectKey = true;
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectKey = true;
    i++;
  }
  return undefined;
}

export interface SafetensorsIndex {
  /** tensor name → shard file name */
  weightMap: Map<string, string>;
  shards: string[];
}

/** Parses `model.safetensors.index.json`. */
export function parseSafetensorsIndex(text: string, file = 'model.safetensors.index.json'): SafetensorsIndex {
  let raw: { weight_map?: Record<string, unknown> };
  try {
    raw = JSON.parse(text) as typeof raw;
  } catch (cause) {
    throw new ModelFormatError('bad-header', file, `is not valid JSON (${String(cause)}).`);
  }
  if (typeof raw?.weight_map !== 'object' || raw.weight_map === null) {
    throw new ModelFormatError('bad-header', file, 'has no weight_map.');
  }
  const duplicate = firstDuplicateKeyIn(text, 'weight_map');
  if (duplicate !== undefined) {
    throw new ModelFormatError(
      'duplicate-tensor',
      file,
      `tensor "${duplicate}" is listed twice in weight_map.`,
    );
  }
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(raw.weight_map)) {
    if (typeof shard !== 'string' || shard.includes('..') || shard.startsWith('/')) {
      throw new ModelFormatError('bad-header', file, `weight_map entry "${name}" has a bad file name.`);
    }
    weightMap.set(name, shard);
  }
  return { weightMap, shards: [...new Set(weightMap.values())].sort() };
}

function firstDuplicateKeyIn(text: string, key: string): string | undefined {
  const at = text.indexOf(`"${key}"`);
  if (at < 0) return undefined;
  const open = text.indexOf('{', at);
  let depth = 0;
  let i = open;
  for (; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      i++;
      while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    } else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) break;
  }
  return firstDuplicateTopLevelKey(text.slice(open, i + 1));
}

/**
 * Reads the headers of all shards and merges them; a tensor present in two shards, or in a shard the
 * index does not assign it to, is an error.
 */
export async function readShardedSafetensors(
  index: SafetensorsIndex,
  openShard: (file: string) => Promise<ByteSource>,
): Promise<TensorEntry[]> {
  const all = new Map<string, TensorEntry>();
  for (const shard of index.shards) {
    const header = await readSafetensorsHeader(await openShard(shard));
    for (const t of header.tensors) {
      if (all.has(t.name)) {
        throw new ModelFormatError('duplicate-tensor', shard, `tensor "${t.name}" is also in another shard.`);
      }
      const mapped = index.weightMap.get(t.name);
      if (mapped !== shard) {
        throw new ModelFormatError(
          'bad-header',
          shard,
          `tensor "${t.name}" is in this shard but the index ${mapped ? `puts it in ${mapped}` : 'does not list it'}.`,
        );
      }
      all.set(t.name, t);
    }
  }
  for (const [name, shard] of index.weightMap) {
    if (!all.has(name)) {
      throw new ModelFormatError(
        'missing-tensor',
        shard,
        `tensor "${name}" listed in the index is not in the shard.`,
      );
    }
  }
  return [...all.values()];
}

export interface SafetensorsWriteEntry {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16';
  shape: number[];
  /** Little-endian element bytes. */
  data: Uint8Array;
}

/** Serializes tensors (in the given order) to a safetensors file. */
export function writeSafetensors(
  entries: SafetensorsWriteEntry[],
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const names = new Set<string>();
  for (const e of entries) {
    if (names.has(e.name)) throw new Error(`writeSafetensors: duplicate tensor ${e.name}`);
    names.add(e.name);
    const expected = numel(e.shape) * DTYPE_BYTES[e.dtype];
    if (e.data.byteLength !== expected) {
      throw new Error(`writeSafetensors: ${e.name} has ${e.data.byteLength} bytes, expected ${expected}`);
    }
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.data.byteLength] };
    offset += e.data.byteLength;
  }
  let json = JSON.stringify(header);
  const encoder = new TextEncoder();
  let headerBytes = encoder.encode(json);
  const pad = (8 - (headerBytes.byteLength % 8)) % 8;
  json += ' '.repeat(pad);
  headerBytes = encoder.encode(json);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const e of entries) {
    out.set(e.data, at);
    at += e.data.byteLength;
  }
  return out;
}
