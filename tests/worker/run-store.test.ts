/**
 * The browser's store of interrupted runs, on an in-memory stand-in for OPFS that behaves like
 * `createWritable` (a write lands only on close) and can run out of quota or be cut off mid-write.
 */
import { describe, expect, it } from 'vitest';
import type { DataRecord, SplitName } from '../../src/data/types.ts';
import type { RunCheckpoint } from '../../src/train/checkpoint.ts';
import { resolveConfig } from '../../src/train/config.ts';
import {
  CheckpointStorageError,
  parseRecordsJsonl,
  RunStore,
  type DirHandleLike,
  type FileHandleLike,
  type RunManifest,
} from '../../src/worker/run-store.ts';
import type { SavedHistory } from '../../src/worker/protocol.ts';

const named = (name: string, message = name) => Object.assign(new Error(message), { name });

/** Bytes written so far across the whole tree, and a budget that throws QuotaExceededError. */
class Disk {
  used = 0;
  quota = Infinity;
  /** Throw (as a killed tab would stop) at the n-th write from now. */
  failAt?: { n: number; error: Error };
}

class MemFile implements FileHandleLike {
  readonly kind = 'file';
  data: Uint8Array = new Uint8Array(0);
  constructor(
    readonly name: string,
    private readonly disk: Disk,
  ) {}
  async getFile(): Promise<Blob> {
    return new Blob([this.data as BlobPart]);
  }
  async createWritable() {
    const parts: Uint8Array[] = [];
    const disk = this.disk;
    return {
      write: async (data: Blob | Uint8Array | string) => {
        if (disk.failAt && --disk.failAt.n <= 0) {
          const error = disk.failAt.error;
          disk.failAt = undefined;
          throw error;
        }
        const bytes =
          typeof data === 'string'
            ? new TextEncoder().encode(data)
            : data instanceof Blob
              ? new Uint8Array(await data.arrayBuffer())
              : data;
        if (disk.used + bytes.length > disk.quota) throw named('QuotaExceededError', 'quota exceeded');
        disk.used += bytes.length;
        parts.push(bytes);
      },
      // As createWritable's swap file: the file changes only now, all at once.
      close: async () => {
        this.data = new Uint8Array(await new Blob(parts as BlobPart[]).arrayBuffer());
      },
      abort: async () => undefined,
    };
  }
}

class MemDir implements DirHandleLike {
  readonly kind = 'directory';
  readonly entries = new Map<string, MemDir | MemFile>();
  constructor(
    readonly name: string,
    private readonly disk: Disk,
  ) {}
  async getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<MemDir> {
    const entry = this.entries.get(name);
    if (entry instanceof MemDir) return entry;
    if (entry || !options?.create) throw named('NotFoundError');
    const dir = new MemDir(name, this.disk);
    this.entries.set(name, dir);
    return dir;
  }
  async getFileHandle(name: string, options?: { create?: boolean }): Promise<MemFile> {
    const entry = this.entries.get(name);
    if (entry instanceof MemFile) return entry;
    if (entry || !options?.create) throw named('NotFoundError');
    const file = new MemFile(name, this.disk);
    this.entries.set(name, file);
    return file;
  }
  async removeEntry(name: string): Promise<void> {
    if (!this.entries.delete(name)) throw named('NotFoundError');
  }
  async *values() {
    yield* [...this.entries.values()];
  }
}

function setup() {
  const disk = new Disk();
  const origin = new MemDir('', disk);
  return { disk, origin, store: new RunStore(async () => origin) };
}

const records: DataRecord[] = [
  { code: 'void a() {}', label: 1, cwe: 'CWE-89' },
  { code: 'void b() {}', label: 0, weight: 3 },
  { code: 'void c() { "x\\n" }', label: 1, project: 'p' },
];
const splits: SplitName[] = ['train', 'validation', 'test'];

function manifest(runId: string): RunManifest {
  return {
    format: 'vulnlab-browser-run',
    version: 1,
    runId,
    name: `run ${runId}`,
    createdAt: 1,
    model: { kind: 'demo' },
    modelName: 'demo',
    dataset: { name: 'slice.jsonl', records: records.length },
    config: resolveConfig({ seed: 3 }),
    totalSteps: 10,
  };
}

function checkpoint(step: number): RunCheckpoint {
  const values = Float32Array.from([step, -1.5, 2 ** -20, 7]);
  return {
    config: resolveConfig({ seed: 3, optimizer: { lr: 1e-3 } }),
    model: 'demo',
    data: '1:0000abcd',
    step,
    epoch: 0,
    batch: step,
    dropoutStep: step,
    optimizer: {
      step,
      moments: new Map([['score.weight', { m: values.map((v) => v / 2), v: values.map((v) => v * v) }]]),
    },
    trainables: new Map([['score.weight', values]]),
    best: { step: 2, auc: 0.75, trainables: new Map([['score.weight', values.map((v) => -v)]]) },
    history: [{ step: 2, path: 'optimizer.lr', value: 1e-3 }],
    curves: history(step),
    totals: { trainMs: 10 * step, trainTokens: 100 * step, trainFunctions: step, nonFinite: 0 },
  };
}

const history = (step: number): SavedHistory => ({
  steps: Array.from({ length: step }, (_, i) => ({
    step: i + 1,
    epoch: 0,
    loss: 1 / (i + 1),
    lr: 1e-3,
    gradNorm: 0.5,
    tokensPerSecond: 100,
  })),
  evals: [],
  markers: [{ step: 2, path: 'optimizer.lr', value: 1e-3 }],
});

describe('the browser run store', () => {
  it('round-trips a checkpoint, the records with their splits and the chart history', async () => {
    const { store } = setup();
    const saver = store.saver(manifest('r1'), records, splits);
    const off: CheckpointStorageError[] = [];
    expect(await saver.save(checkpoint(2), (e) => off.push(e))).toBe(true);
    expect(await saver.save(checkpoint(4), (e) => off.push(e))).toBe(true);
    expect(off).toEqual([]);

    const [listed] = await store.list();
    expect(listed).toMatchObject({ runId: 'r1', step: 4, epoch: 0, totalSteps: 10, modelName: 'demo' });
    expect(listed.dataset).toBe('slice.jsonl');
    const loaded = await store.load('r1');
    expect(loaded.checkpoint.step).toBe(4);
    expect([...loaded.checkpoint.trainables.get('score.weight')!]).toEqual([4, -1.5, 2 ** -20, 7]);
    expect(loaded.checkpoint.best?.trainables.get('score.weight')![0]).toBe(-4);
    expect(loaded.checkpoint.optimizer.moments.get('score.weight')!.v[1]).toBe(2.25);
    expect(loaded.records).toEqual(records.map((r, i) => ({ ...r, split: splits[i] })));
    expect(loaded.checkpoint.curves?.steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(loaded.legacyHistory).toBeUndefined();
    expect(loaded.manifest.config.seed).toBe(3);
  });

  it('counts the bytes of saved runs', async () => {
    const { store, disk } = setup();
    expect(await store.bytes()).toBe(0);
    await store.saver(manifest('r1'), records, splits).save(checkpoint(2), () => undefined);
    expect(await store.bytes()).toBe(disk.used);
    await store.remove('r1');
    expect(await store.bytes()).toBe(0);
  });

  it('keeps only the newest checkpoint folder', async () => {
    const { store, origin } = setup();
    const saver = store.saver(manifest('r1'), records, splits);
    for (const step of [2, 4, 6]) await saver.save(checkpoint(step), () => undefined);
    const dir = (await (await origin.getDirectoryHandle('vulnlab-runs')).getDirectoryHandle('r1')) as MemDir;
    expect([...dir.entries.keys()].filter((n) => n.startsWith('ckpt-'))).toEqual(['ckpt-6-2']);
  });

  it('still reads the history.json of a run saved before checkpoints carried the curves', async () => {
    const { store, origin } = setup();
    const { curves: _curves, ...old } = checkpoint(2);
    await store.saver(manifest('r1'), records, splits).save(old, () => undefined);
    const dir = (await (await origin.getDirectoryHandle('vulnlab-runs')).getDirectoryHandle('r1')) as MemDir;
    const folder = [...dir.entries.entries()].find(([name]) => name.startsWith('ckpt-'))![1] as MemDir;
    const writable = await (await folder.getFileHandle('history.json', { create: true })).createWritable();
    await writable.write(JSON.stringify(history(2)));
    await writable.close();
    const loaded = await store.load('r1');
    expect(loaded.checkpoint.curves).toBeUndefined();
    expect(loaded.legacyHistory?.steps.map((s) => s.step)).toEqual([1, 2]);
  });

  it('a write cut off half-way leaves the previous checkpoint in force', async () => {
    const { store, disk } = setup();
    const saver = store.saver(manifest('r1'), records, splits);
    await saver.save(checkpoint(2), () => undefined);
    // The tab dies while the tensors of step 4 are being written: the next save never completes.
    disk.failAt = { n: 2, error: named('AbortError', 'the page went away') };
    const off: CheckpointStorageError[] = [];
    expect(await saver.save(checkpoint(4), (e) => off.push(e))).toBe(false);
    expect(off[0].serialize().code).toBe('storage-unavailable');
    const loaded = await store.load('r1');
    expect(loaded.checkpoint.step).toBe(2);
    expect(loaded.checkpoint.curves?.steps).toHaveLength(2);
    // A fresh store (after the reload) sees the same.
    expect((await store.list()).map((r) => r.step)).toEqual([2]);
  });

  it('a run that never completed its first checkpoint is not offered', async () => {
    const { store, disk } = setup();
    const saver = store.saver(manifest('r1'), records, splits);
    disk.failAt = { n: 4, error: named('AbortError') };
    await saver.save(checkpoint(2), () => undefined);
    expect(await store.list()).toEqual([]);
    await expect(store.load('r1')).rejects.toThrow(/no longer in this browser/);
  });

  it('a full quota turns checkpoints off once, with a storage-full error, and never throws', async () => {
    const { store, disk } = setup();
    const saver = store.saver(manifest('r1'), records, splits);
    await saver.save(checkpoint(2), () => undefined);
    disk.quota = disk.used + 100;
    const off: CheckpointStorageError[] = [];
    expect(await saver.save(checkpoint(4), (e) => off.push(e))).toBe(false);
    expect(await saver.save(checkpoint(6), (e) => off.push(e))).toBe(false);
    expect(off).toHaveLength(1);
    expect(off[0].serialize()).toMatchObject({ code: 'storage-full', message: /storage is full/ });
    expect(saver.enabled).toBe(false);
    // The checkpoint before the quota ran out can still be resumed.
    expect((await store.load('r1')).checkpoint.step).toBe(2);
  });

  it('lists newest first and removes a run with its files', async () => {
    const { store } = setup();
    await store.saver(manifest('a'), records, splits).save(checkpoint(2), () => undefined);
    await new Promise((r) => setTimeout(r, 5));
    await store.saver(manifest('b'), records, splits).save(checkpoint(3), () => undefined);
    expect((await store.list()).map((r) => r.runId)).toEqual(['b', 'a']);
    await store.remove('b');
    expect((await store.list()).map((r) => r.runId)).toEqual(['a']);
    await store.saver(manifest('a'), records, splits).discard();
    expect(await store.list()).toEqual([]);
  });

  it('a resumed run saves checkpoints without rewriting its data', async () => {
    const { store } = setup();
    await store.saver(manifest('r1'), records, splits).save(checkpoint(2), () => undefined);
    const { manifest: saved } = await store.load('r1');
    const resumed = store.resumedSaver(saved);
    expect(await resumed.save(checkpoint(4), () => undefined)).toBe(true);
    const loaded = await store.load('r1');
    expect(loaded.checkpoint.step).toBe(4);
    expect(loaded.records).toHaveLength(3);
  });

  it('refuses damaged saved data with a way forward', () => {
    expect(() => parseRecordsJsonl('{"code": "x", "label": 1}\n{"label": 1}\n')).toThrow(
      /not a labelled function/,
    );
    expect(parseRecordsJsonl('\n{"code": "x", "label": 0}\n\n')).toEqual([{ code: 'x', label: 0 }]);
  });
});
