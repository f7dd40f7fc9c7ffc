/**
 * Browser cache stores: the Origin Private File System and the Cache API, behind `CacheStore`.
 * Typed through minimal local interfaces so this module typechecks without the DOM library; it runs
 * in the page and in a Web Worker. `pickBrowserStore` measures both and keeps the faster one.
 */
import { pickFastestStore, type CacheFileInfo, type CacheStore } from './cache.ts';
import { BlobByteSource, type ByteSource } from './source.ts';

interface WritableLike {
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
}
interface FileHandleLike {
  kind: 'file';
  name: string;
  getFile(): Promise<Blob>;
  createWritable(): Promise<WritableLike>;
}
interface DirHandleLike {
  kind: 'directory';
  name: string;
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<DirHandleLike>;
  getFileHandle(name: string, options?: { create?: boolean }): Promise<FileHandleLike>;
  removeEntry(name: string, options?: { recursive?: boolean }): Promise<void>;
  values(): AsyncIterable<FileHandleLike | DirHandleLike>;
}
interface StorageManagerLike {
  getDirectory?(): Promise<DirHandleLike>;
  estimate?(): Promise<{ usage?: number; quota?: number }>;
  persist?(): Promise<boolean>;
}
interface CacheLike {
  put(url: string, response: Response): Promise<void>;
  match(url: string): Promise<Response | undefined>;
  keys(): Promise<readonly { url: string }[]>;
  delete(url: string): Promise<boolean>;
}
interface CacheStorageLike {
  open(name: string): Promise<CacheLike>;
}

function storageManager(): StorageManagerLike | undefined {
  return (globalThis as unknown as { navigator?: { storage?: StorageManagerLike } }).navigator?.storage;
}

async function estimate(): Promise<{ usage: number; quota: number } | undefined> {
  const e = await storageManager()?.estimate?.();
  return e && e.quota !== undefined ? { usage: e.usage ?? 0, quota: e.quota } : undefined;
}

const isNotFound = (err: unknown) => (err as { name?: string })?.name === 'NotFoundError';

/** OPFS: `<root>/vulnlab-weights/<entry>/<file>`. */
export class OpfsCacheStore implements CacheStore {
  readonly kind = 'opfs';
  private rootPromise: Promise<DirHandleLike> | undefined;

  static available(): boolean {
    return typeof storageManager()?.getDirectory === 'function';
  }

  private root(): Promise<DirHandleLike> {
    this.rootPromise ??= storageManager()!.getDirectory!().then((r) =>
      r.getDirectoryHandle('vulnlab-weights', { create: true }),
    );
    return this.rootPromise;
  }

  private async dir(name: string, create: boolean): Promise<DirHandleLike | undefined> {
    try {
      return await (await this.root()).getDirectoryHandle(name, { create });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async put(dir: string, file: string, bytes: Uint8Array): Promise<void> {
    const d = (await this.dir(dir, true))!;
    const w = await (await d.getFileHandle(file, { create: true })).createWritable();
    // createWritable writes to a swap file that replaces the original on close(): atomic per file.
    await w.write(bytes);
    await w.close();
  }

  async get(dir: string, file: string): Promise<ByteSource | undefined> {
    const d = await this.dir(dir, false);
    if (!d) return undefined;
    try {
      return new BlobByteSource(await (await d.getFileHandle(file)).getFile(), file);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async files(dir: string): Promise<CacheFileInfo[]> {
    const d = await this.dir(dir, false);
    if (!d) return [];
    const out: CacheFileInfo[] = [];
    for await (const h of d.values()) {
      if (h.kind === 'file') out.push({ name: h.name, size: (await h.getFile()).size });
    }
    return out;
  }

  async dirs(): Promise<string[]> {
    const out: string[] = [];
    for await (const h of (await this.root()).values()) if (h.kind === 'directory') out.push(h.name);
    return out;
  }

  async removeDir(dir: string): Promise<void> {
    try {
      await (await this.root()).removeEntry(dir, { recursive: true });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  estimate(): Promise<{ usage: number; quota: number } | undefined> {
    return estimate();
  }
}

/** Cache API: one Response per file at `https://vulnlab.cache/<entry>/<file>`. */
export class CacheApiStore implements CacheStore {
  readonly kind = 'cache-api';
  private cachePromise: Promise<CacheLike> | undefined;
  private static readonly BASE = 'https://vulnlab.cache/';

  static available(): boolean {
    return typeof (globalThis as unknown as { caches?: CacheStorageLike }).caches?.open === 'function';
  }

  private cache(): Promise<CacheLike> {
    this.cachePromise ??= (globalThis as unknown as { caches: CacheStorageLike }).caches.open(
      'vulnlab-weights',
    );
    return this.cachePromise;
  }

  private url(dir: string, file: string): string {
    return `${CacheApiStore.BASE}${encodeURIComponent(dir)}/${encodeURIComponent(file)}`;
  }

  private async entries(): Promise<{ dir: string; file: string; url: string }[]> {
    const keys = await (await this.cache()).keys();
    return keys
      .map((k) => k.url)
      .filter((u) => u.startsWith(CacheApiStore.BASE))
      .map((url) => {
        const [dir, file] = url.slice(CacheApiStore.BASE.length).split('/').map(decodeURIComponent);
        return { dir, file, url };
      });
  }

  async put(dir: string, file: string, bytes: Uint8Array): Promise<void> {
    const body = new Blob([bytes as Uint8Array<ArrayBuffer>]);
    await (
      await this.cache()
    ).put(
      this.url(dir, file),
      new Response(body, { headers: { 'Content-Length': String(bytes.byteLength) } }),
    );
  }

  async get(dir: string, file: string): Promise<ByteSource | undefined> {
    const res = await (await this.cache()).match(this.url(dir, file));
    return res ? new BlobByteSource(await res.blob(), file) : undefined;
  }

  async files(dir: string): Promise<CacheFileInfo[]> {
    const out: CacheFileInfo[] = [];
    for (const e of await this.entries()) {
      if (e.dir !== dir) continue;
      const res = await (await this.cache()).match(e.url);
      const size = Number(res?.headers.get('Content-Length') ?? (await res?.blob())?.size ?? 0);
      out.push({ name: e.file, size });
    }
    return out;
  }

  async dirs(): Promise<string[]> {
    return [...new Set((await this.entries()).map((e) => e.dir))];
  }

  async removeDir(dir: string): Promise<void> {
    const cache = await this.cache();
    for (const e of await this.entries()) if (e.dir === dir) await cache.delete(e.url);
  }

  estimate(): Promise<{ usage: number; quota: number } | undefined> {
    return estimate();
  }
}

/**
 * The faster of OPFS and the Cache API in this browser, measured with an 8 MiB write+read probe
 * (the issue asks to choose by measurement, not by assumption).
 */
export async function pickBrowserStore(probeBytes = 8 << 20): Promise<CacheStore> {
  const stores: CacheStore[] = [];
  if (OpfsCacheStore.available()) stores.push(new OpfsCacheStore());
  if (CacheApiStore.available()) stores.push(new CacheApiStore());
  return pickFastestStore(stores, probeBytes);
}
