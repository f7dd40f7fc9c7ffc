/**
 * Cache of converted weights, keyed by repo, revision, weight-file hash and weight format. One
 * `WeightCache` over interchangeable stores: a Node directory (./node-cache.ts), OPFS or the Cache
 * API in the browser (./browser-cache.ts), or memory (tests). Each tensor is stored as its own file in
 * the target format as soon as it is converted, so a load cut short (network loss) resumes from the
 * tensors already cached; a manifest written last marks an entry complete.
 */
import { ModelIoError } from './errors.ts';
import type { WeightFormat } from './convert.ts';
import { weightBytes } from './convert.ts';
import { MemoryByteSource, type ByteSource } from './source.ts';
import { rowsCols } from './tensors.ts';

export interface CacheKey {
  repo: string;
  revision: string;
  /** Hash of the weight file(s) (Hub LFS sha256 / git oid; size+name for local files). */
  fileHash: string;
  weightFormat: WeightFormat;
}

export interface CacheFileInfo {
  name: string;
  size: number;
}

/** A flat key-value store of directories of files; implementations only move bytes. */
export interface CacheStore {
  readonly kind: string;
  put(dir: string, file: string, bytes: Uint8Array): Promise<void>;
  get(dir: string, file: string): Promise<ByteSource | undefined>;
  files(dir: string): Promise<CacheFileInfo[]>;
  dirs(): Promise<string[]>;
  removeDir(dir: string): Promise<void>;
  /** Bytes used and available to this origin/directory, when the platform says. */
  estimate(): Promise<{ usage: number; quota: number } | undefined>;
}

export interface CachedTensor {
  name: string;
  shape: number[];
  format: WeightFormat;
  bytes: number;
}

export interface CachedModelInfo {
  key: CacheKey;
  complete: boolean;
  bytes: number;
  tensors: number;
  createdAt?: string;
}

interface Manifest {
  version: 1;
  key: CacheKey;
  tensors: CachedTensor[];
  createdAt: string;
}

const MANIFEST = 'manifest.json';
const KEYFILE = 'key.json';
const FORMATS: readonly WeightFormat[] = ['f32', 'f16', 'q8_0', 'q4_0'];

/** A directory name for a key (stable, filesystem-safe). */
export function cacheDirName(key: CacheKey): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_');
  return `${safe(key.repo)}@${safe(key.revision)}@${safe(key.fileHash).slice(0, 40)}@${key.weightFormat}`;
}

export function quotaError(needed: number, free: number | undefined, cause?: unknown): ModelIoError {
  return new ModelIoError(
    'quota-exceeded',
    `Not enough storage to cache the model weights (${Math.round(needed / 2 ** 20)} MiB needed${
      free === undefined ? '' : `, ${Math.round(free / 2 ** 20)} MiB free`
    }).`,
    'Delete cached models you no longer need, allow the site more storage, or load without caching.',
    { cause },
  );
}

export function isQuotaError(err: unknown): boolean {
  const e = err as { name?: string; code?: string } | null;
  return !!e && (e.name === 'QuotaExceededError' || e.code === 'ENOSPC' || e.code === 'EDQUOT');
}

/** Writes tensors of one entry as they arrive. */
export interface CacheWriter {
  readonly key: CacheKey;
  put(name: string, shape: number[], format: WeightFormat, bytes: Uint8Array): Promise<void>;
  /** Marks the entry complete with the full tensor list (including tensors cached earlier). */
  commit(tensors: CachedTensor[]): Promise<void>;
}

export class WeightCache {
  constructor(readonly store: CacheStore) {}

  /** Tensors cached for a key (complete or partial), each readable as a ByteSource. */
  async lookup(
    key: CacheKey,
  ): Promise<{ complete: boolean; tensors: (CachedTensor & { open: () => Promise<ByteSource> })[] }> {
    const dir = cacheDirName(key);
    const files = await this.store.files(dir);
    const open = (file: string) => async () => {
      const s = await this.store.get(dir, file);
      if (!s)
        throw new ModelIoError(
          'truncated',
          `Cached tensor ${file} vanished.`,
          'Delete the cached model and load again.',
        );
      return s;
    };
    const manifestFile = files.find((f) => f.name === MANIFEST);
    if (manifestFile) {
      const manifest = await this.readManifest(dir);
      if (manifest) {
        const sizes = new Map(files.map((f) => [f.name, f.size]));
        const ok = manifest.tensors.every((t) => sizes.get(tensorFile(t.name, t.format)) === t.bytes);
        if (ok) {
          return {
            complete: true,
            tensors: manifest.tensors.map((t) => ({ ...t, open: open(tensorFile(t.name, t.format)) })),
          };
        }
      }
    }
    // Partial entry: tensor files whose size matches their format are usable.
    const tensors: (CachedTensor & { open: () => Promise<ByteSource> })[] = [];
    for (const f of files) {
      const parsed = parseTensorFile(f.name);
      if (!parsed) continue;
      tensors.push({
        name: parsed.name,
        shape: [],
        format: parsed.format,
        bytes: f.size,
        open: open(f.name),
      });
    }
    return { complete: false, tensors };
  }

  /** Starts (or continues) an entry; fails with a quota error when `totalBytes` will not fit. */
  async writer(key: CacheKey, totalBytes: number): Promise<CacheWriter> {
    const dir = cacheDirName(key);
    const existing = (await this.store.files(dir)).reduce((s, f) => s + f.size, 0);
    const est = await this.store.estimate();
    if (est && est.quota - est.usage < totalBytes - existing) {
      throw quotaError(totalBytes - existing, est.quota - est.usage);
    }
    await this.guard(
      () => this.store.put(dir, KEYFILE, new TextEncoder().encode(JSON.stringify(key))),
      totalBytes,
    );
    return {
      key,
      put: async (name, _shape, format, bytes) => {
        await this.guard(() => this.store.put(dir, tensorFile(name, format), bytes), bytes.byteLength);
      },
      commit: async (tensors) => {
        const manifest: Manifest = { version: 1, key, tensors, createdAt: new Date().toISOString() };
        await this.guard(
          () => this.store.put(dir, MANIFEST, new TextEncoder().encode(JSON.stringify(manifest))),
          1024,
        );
      },
    };
  }

  async list(): Promise<CachedModelInfo[]> {
    const out: CachedModelInfo[] = [];
    for (const dir of await this.store.dirs()) {
      const files = await this.store.files(dir);
      const manifest = files.some((f) => f.name === MANIFEST) ? await this.readManifest(dir) : undefined;
      let key = manifest?.key;
      if (!key) {
        const k = await this.store.get(dir, KEYFILE);
        if (!k) continue;
        try {
          key = JSON.parse(new TextDecoder().decode(await k.read(0, k.size))) as CacheKey;
        } catch {
          continue;
        }
      }
      const tensorFiles = files.filter((f) => parseTensorFile(f.name));
      out.push({
        key,
        complete: !!manifest,
        bytes: tensorFiles.reduce((s, f) => s + f.size, 0),
        tensors: tensorFiles.length,
        createdAt: manifest?.createdAt,
      });
    }
    return out;
  }

  async delete(key: CacheKey): Promise<void> {
    await this.store.removeDir(cacheDirName(key));
  }

  estimate(): Promise<{ usage: number; quota: number } | undefined> {
    return this.store.estimate();
  }

  private async readManifest(dir: string): Promise<Manifest | undefined> {
    const s = await this.store.get(dir, MANIFEST);
    if (!s) return undefined;
    try {
      const m = JSON.parse(new TextDecoder().decode(await s.read(0, s.size))) as Manifest;
      return m.version === 1 ? m : undefined;
    } catch {
      return undefined;
    }
  }

  private async guard(fn: () => Promise<void>, bytes: number): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (isQuotaError(err)) {
        const est = await this.store.estimate().catch(() => undefined);
        throw quotaError(bytes, est ? est.quota - est.usage : undefined, err);
      }
      throw err;
    }
  }
}

function tensorFile(name: string, format: WeightFormat): string {
  return `${name}.${format}.bin`;
}

function parseTensorFile(file: string): { name: string; format: WeightFormat } | undefined {
  const m = /^(.+)\.(f32|f16|q8_0|q4_0)\.bin$/.exec(file);
  return m && FORMATS.includes(m[2] as WeightFormat)
    ? { name: m[1], format: m[2] as WeightFormat }
    : undefined;
}

/** Expected byte size of a cached tensor (used to reject partial writes). */
export function cachedBytes(shape: number[], format: WeightFormat): number {
  return weightBytes(format, ...rowsCols(shape));
}

/** In-memory store (tests; also a fallback where no persistent storage exists). */
export class MemoryCacheStore implements CacheStore {
  readonly kind = 'memory';
  private readonly data = new Map<string, Map<string, Uint8Array>>();
  constructor(private readonly quota?: number) {}
  async put(dir: string, file: string, bytes: Uint8Array): Promise<void> {
    const used = this.used();
    if (this.quota !== undefined && used + bytes.byteLength > this.quota) {
      throw Object.assign(new Error('quota exceeded'), { name: 'QuotaExceededError' });
    }
    if (!this.data.has(dir)) this.data.set(dir, new Map());
    this.data.get(dir)!.set(file, bytes.slice());
  }
  async get(dir: string, file: string): Promise<ByteSource | undefined> {
    const b = this.data.get(dir)?.get(file);
    return b ? new MemoryByteSource(b, file) : undefined;
  }
  async files(dir: string): Promise<CacheFileInfo[]> {
    return [...(this.data.get(dir) ?? new Map<string, Uint8Array>())].map(([name, b]) => ({
      name,
      size: b.byteLength,
    }));
  }
  async dirs(): Promise<string[]> {
    return [...this.data.keys()];
  }
  async removeDir(dir: string): Promise<void> {
    this.data.delete(dir);
  }
  async estimate(): Promise<{ usage: number; quota: number } | undefined> {
    return this.quota === undefined ? undefined : { usage: this.used(), quota: this.quota };
  }
  private used(): number {
    let n = 0;
    for (const d of this.data.values()) for (const b of d.values()) n += b.byteLength;
    return n;
  }
}

/** Write-then-read throughput of a store in MB/s (for choosing OPFS vs Cache API in the browser). */
export async function measureStore(
  store: CacheStore,
  bytes = 8 << 20,
  now: () => number = () => performance.now(),
): Promise<{ writeMBps: number; readMBps: number }> {
  const dir = `__vulnlab_probe_${Math.random().toString(36).slice(2)}`;
  const data = new Uint8Array(bytes).map((_, i) => i & 0xff);
  const t0 = now();
  await store.put(dir, 'probe.bin', data);
  const t1 = now();
  const src = await store.get(dir, 'probe.bin');
  const back = await src!.read(0, src!.size);
  const t2 = now();
  await store.removeDir(dir);
  if (back.byteLength !== bytes) throw new Error(`${store.kind}: probe read back ${back.byteLength} bytes`);
  const mb = bytes / 1e6;
  return {
    writeMBps: mb / Math.max((t1 - t0) / 1000, 1e-6),
    readMBps: mb / Math.max((t2 - t1) / 1000, 1e-6),
  };
}

/** Picks the store with the best combined write+read time for a model-sized load. */
export async function pickFastestStore(stores: CacheStore[], probeBytes?: number): Promise<CacheStore> {
  let best: { store: CacheStore; seconds: number } | undefined;
  for (const store of stores) {
    try {
      const m = await measureStore(store, probeBytes);
      const seconds = 1 / m.writeMBps + 1 / m.readMBps;
      if (!best || seconds < best.seconds) best = { store, seconds };
    } catch {
      // A store that cannot write here (no OPFS, private mode) is skipped.
    }
  }
  if (!best)
    throw new ModelIoError(
      'quota-exceeded',
      'No usable storage for the weight cache.',
      'Load without caching.',
    );
  return best.store;
}
