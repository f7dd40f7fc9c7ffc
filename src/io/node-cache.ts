/** Node-only cache store: one directory per cached model under a cache root. */
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CacheFileInfo, CacheStore } from './cache.ts';
import { NodeFileByteSource } from './node-source.ts';
import type { ByteSource } from './source.ts';

export class NodeDirCacheStore implements CacheStore {
  readonly kind = 'node-dir';
  constructor(readonly root: string) {}

  async put(dir: string, file: string, bytes: Uint8Array): Promise<void> {
    const d = join(this.root, dir);
    await mkdir(d, { recursive: true });
    // Write then rename, so a crash never leaves a tensor file of the right name with half its bytes.
    const tmp = join(d, `.${file}.${process.pid}.tmp`);
    await writeFile(tmp, bytes);
    await rename(tmp, join(d, file));
  }

  async get(dir: string, file: string): Promise<ByteSource | undefined> {
    try {
      return await NodeFileByteSource.open(join(this.root, dir, file));
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async files(dir: string): Promise<CacheFileInfo[]> {
    try {
      const names = (await readdir(join(this.root, dir))).filter((n) => !n.startsWith('.'));
      return Promise.all(
        names.map(async (name) => ({ name, size: (await stat(join(this.root, dir, name))).size })),
      );
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return [];
      throw err;
    }
  }

  async dirs(): Promise<string[]> {
    try {
      return (await readdir(this.root, { withFileTypes: true }))
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return [];
      throw err;
    }
  }

  async removeDir(dir: string): Promise<void> {
    await rm(join(this.root, dir), { recursive: true, force: true });
  }

  async estimate(): Promise<{ usage: number; quota: number } | undefined> {
    try {
      const { statfs } = await import('node:fs/promises');
      await mkdir(this.root, { recursive: true });
      const s = await statfs(this.root);
      let usage = 0;
      for (const d of await this.dirs()) for (const f of await this.files(d)) usage += f.size;
      return { usage, quota: usage + s.bavail * s.bsize };
    } catch {
      return undefined;
    }
  }
}
