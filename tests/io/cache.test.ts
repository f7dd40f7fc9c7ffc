import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { WeightFormat } from '../../src/engine/quant.ts';
import {
  cacheDirName,
  MemoryCacheStore,
  pickFastestStore,
  WeightCache,
  type CacheStore,
} from '../../src/io/cache.ts';
import { MemoryModelFiles, type ModelFiles } from '../../src/io/files.ts';
import { loadModel } from '../../src/io/load.ts';
import { NodeDirCacheStore } from '../../src/io/node-cache.ts';
import type { LoadProgress } from '../../src/io/progress.ts';
import { demoFiles, sameBytes } from './helpers/fixtures.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'vulnlab-cache-'));
  dirs.push(d);
  return d;
};

function collect() {
  const got = new Map<string, Uint8Array>();
  return {
    got,
    sink: async (name: string, _s: number[], _f: WeightFormat, bytes: Uint8Array) =>
      void got.set(name, bytes.slice()),
  };
}

/** Demo files whose model.safetensors reads (2 header reads, then one per tensor) can be counted and cut off. */
function countingFiles(failAfter = Infinity): ModelFiles & { weightReads: () => number } {
  const inner = new MemoryModelFiles(demoFiles('safetensors'), 'demo/counting');
  let reads = 0;
  return {
    label: 'demo/counting',
    revision: 'abc123',
    list: () => inner.list(),
    weightReads: () => reads,
    open: async (p) => {
      const s = await inner.open(p);
      if (p !== 'model.safetensors') return s;
      return {
        size: s.size,
        name: s.name,
        read: async (o: number, l: number) => {
          if (++reads > failAfter) throw new Error('network gone');
          return s.read(o, l);
        },
      };
    },
  };
}

describe.each([
  ['node directory', () => new NodeDirCacheStore(tempDir())],
  ['memory', () => new MemoryCacheStore()],
] as [string, () => CacheStore][])('weight cache (%s store)', (_name, makeStore) => {
  it('second load comes from the cache (no weight reads), with progress, and identical bytes', async () => {
    const cache = new WeightCache(makeStore());
    const files = countingFiles();
    const first = collect();
    const m1 = await loadModel(files, { weightFormat: 'q4_0', sink: first.sink, cache });
    expect(m1.cache).toBe('miss');
    const readsAfterFirst = files.weightReads();
    expect(readsAfterFirst).toBeGreaterThan(0);

    const second = collect();
    const events: LoadProgress[] = [];
    const m2 = await loadModel(files, {
      weightFormat: 'q4_0',
      sink: second.sink,
      cache,
      onProgress: (p) => events.push(p),
    });
    expect(m2.cache).toBe('hit');
    expect(files.weightReads()).toBe(readsAfterFirst);
    expect(events.at(-1)).toMatchObject({ stage: 'done', fraction: 1 });
    expect(events.at(-1)!.cachedBytes).toBe(events.at(-1)!.totalBytes);
    for (const [name, b] of first.got) expect(sameBytes(second.got.get(name)!, b), name).toBe(true);

    // Another weight format is another entry.
    expect((await loadModel(files, { weightFormat: 'q8_0', sink: async () => {}, cache })).cache).toBe(
      'miss',
    );
    const list = await cache.list();
    expect(list.map((e) => [e.key.weightFormat, e.complete, e.tensors]).sort()).toEqual([
      ['q4_0', true, 28],
      ['q8_0', true, 28],
    ]);
    expect(list[0].key).toMatchObject({ repo: 'demo/counting', revision: 'abc123' });

    await cache.delete(list[0].key);
    expect(await cache.list()).toHaveLength(1);
  });

  it('a load cut short by the network resumes from the tensors already cached', async () => {
    const cache = new WeightCache(makeStore());
    const failing = countingFiles(2 + 10);
    await expect(loadModel(failing, { weightFormat: 'f16', sink: async () => {}, cache })).rejects.toThrow(
      'network gone',
    );
    const partial = await cache.list();
    expect(partial).toHaveLength(1);
    expect(partial[0].complete).toBe(false);
    expect(partial[0].tensors).toBe(10);

    const retry = countingFiles();
    const r = collect();
    const m = await loadModel(retry, { weightFormat: 'f16', sink: r.sink, cache });
    expect(m.cache).toBe('partial');
    expect(retry.weightReads()).toBe(2 + 28 - 10);
    const reference = collect();
    await loadModel(countingFiles(), { weightFormat: 'f16', sink: reference.sink });
    for (const [name, b] of reference.got) expect(sameBytes(r.got.get(name)!, b), name).toBe(true);
    expect((await cache.list())[0].complete).toBe(true);
  });
});

describe('cache quota', () => {
  it('refuses to start a load whose weights will not fit, before anything reaches the sink', async () => {
    const cache = new WeightCache(new MemoryCacheStore(100_000));
    let calls = 0;
    const err = await loadModel(countingFiles(), {
      weightFormat: 'f32',
      sink: async () => void calls++,
      cache,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'quota-exceeded' });
    expect((err as Error).message).toMatch(/MiB needed/);
    expect(calls).toBe(0);
  });

  it('maps a store running out of space mid-write to the quota error', async () => {
    const store = new MemoryCacheStore(200_000);
    // The estimate says there is room; the writes then fail (another tab filled the quota).
    store.estimate = async () => ({ usage: 0, quota: 1e9 });
    const err = await loadModel(countingFiles(), {
      weightFormat: 'f32',
      sink: async () => {},
      cache: new WeightCache(store),
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'quota-exceeded' });
  });

  it('reports usage and quota of a Node cache directory', async () => {
    const est = await new NodeDirCacheStore(tempDir()).estimate();
    expect(est!.quota).toBeGreaterThan(est!.usage);
  });
});

describe('store choice', () => {
  it('picks the fastest working store by measurement and skips broken ones', async () => {
    const slow = new MemoryCacheStore();
    const origPut = slow.put.bind(slow);
    slow.put = async (d, f, b) => {
      await new Promise((r) => setTimeout(r, 50));
      return origPut(d, f, b);
    };
    const broken = new MemoryCacheStore(10);
    const fast = new MemoryCacheStore();
    expect(await pickFastestStore([slow, broken, fast], 1 << 16)).toBe(fast);
    expect(await fast.dirs()).toEqual([]);
  });

  it('cache directory names are filesystem-safe and distinct per key', () => {
    const a = cacheDirName({
      repo: 'WizardLMTeam/WizardCoder-1B-V1.0',
      revision: 'main',
      fileHash: 'ab/cd',
      weightFormat: 'q4_0',
    });
    expect(a).toMatch(/^[A-Za-z0-9._@-]+$/);
    expect(a).not.toBe(
      cacheDirName({
        repo: 'WizardLMTeam/WizardCoder-1B-V1.0',
        revision: 'main',
        fileHash: 'ab/cd',
        weightFormat: 'q8_0',
      }),
    );
  });
});
