/**
 * Interrupted runs kept in the Origin Private File System, so a run survives a page reload, a
 * crashed tab or a lost GPU device. Everything stays in this browser profile; nothing is uploaded.
 *
 *   vulnlab-runs/<run id>/run.json           what the run trained: model source, dataset name, config
 *   vulnlab-runs/<run id>/data.jsonl         the dataset's records with the split each was given
 *   vulnlab-runs/<run id>/ckpt-<step>-<n>/   checkpoint.json + checkpoint.safetensors (+ history.json, written
 *                                            before checkpoints carried the run's curves; still read)
 *   vulnlab-runs/<run id>/current.json       names the newest complete checkpoint folder
 *
 * A checkpoint is written into a fresh folder and only then named by `current.json` (one file,
 * replaced atomically by `createWritable`'s swap file), so a reload in the middle of a write leaves
 * the previous checkpoint in force. Older folders are removed afterwards.
 * No React, no GPU: the engine worker uses it, and unit tests drive it with an in-memory directory.
 */
import { VulnLabError } from '../engine/errors.ts';
import type { DataRecord, SplitName } from '../data/types.ts';
import {
  CHECKPOINT_FILES,
  checkpointFiles,
  readCheckpoint,
  type RunCheckpoint,
} from '../train/checkpoint.ts';
import type { RunConfig } from '../train/config.ts';
import type { SavedHistory, SavedModelSource, SavedRun, SerializedError } from './protocol.ts';

// Minimal shapes of the File System Access API, so a test can supply an in-memory directory.
export interface WritableLike {
  write(data: Blob | Uint8Array | string): Promise<void>;
  close(): Promise<void>;
  abort?(): Promise<void>;
}
export interface FileHandleLike {
  readonly kind: 'file';
  readonly name: string;
  getFile(): Promise<Blob>;
  createWritable(): Promise<WritableLike>;
}
export interface DirHandleLike {
  readonly kind: 'directory';
  readonly name: string;
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<DirHandleLike>;
  getFileHandle(name: string, options?: { create?: boolean }): Promise<FileHandleLike>;
  removeEntry(name: string, options?: { recursive?: boolean }): Promise<void>;
  values(): AsyncIterable<FileHandleLike | DirHandleLike>;
}

/** What a resume needs besides the checkpoint. */
export interface RunManifest {
  format: 'vulnlab-browser-run';
  version: 1;
  runId: string;
  name: string;
  createdAt: number;
  /** Where the base model came from (never a token). */
  model: SavedModelSource;
  /** The model's name as the run recorded it ("demo", a repo id, a folder name). */
  modelName: string;
  dataset: { name: string; records: number };
  /** The config the run started with (the checkpoint holds it with live changes applied). */
  config: RunConfig;
  totalSteps?: number;
}

interface CurrentPointer {
  dir: string;
  step: number;
  epoch: number;
  savedAt: number;
}

export interface LoadedRun {
  manifest: RunManifest;
  checkpoint: RunCheckpoint;
  records: DataRecord[];
  /** The curves of a run saved before checkpoints carried them (RunCheckpoint.curves). */
  legacyHistory?: SavedHistory;
}

const ROOT = 'vulnlab-runs';
const MANIFEST = 'run.json';
const DATA = 'data.jsonl';
const CURRENT = 'current.json';
const HISTORY = 'history.json';
const CHECKPOINT_DIR = /^ckpt-/;

/** Browser storage failed (quota full, or no storage at all); the run itself can go on. */
export class CheckpointStorageError extends VulnLabError {
  constructor(
    readonly storage: 'storage-full' | 'storage-unavailable',
    message: string,
    hint: string,
    options?: { cause?: unknown },
  ) {
    super('bad-input', message, hint, options);
  }

  serialize(): SerializedError {
    return { code: this.storage, message: this.message, hint: this.hint };
  }
}

const isNotFound = (error: unknown) => (error as { name?: string } | null)?.name === 'NotFoundError';
export const isStorageQuotaError = (error: unknown) =>
  ['QuotaExceededError', 'NS_ERROR_DOM_QUOTA_REACHED'].includes(
    (error as { name?: string } | null)?.name ?? '',
  );

function storageError(error: unknown, what: string): CheckpointStorageError {
  if (isStorageQuotaError(error)) {
    return new CheckpointStorageError(
      'storage-full',
      `Browser storage is full: the ${what} could not be saved.`,
      'Free space (delete cached models in the Model panel or interrupted runs in the Train panel, or clear this site’s data), then start the run again to have checkpoints.',
      { cause: error },
    );
  }
  return new CheckpointStorageError(
    'storage-unavailable',
    `The browser refused to save the ${what}: ${error instanceof Error ? error.message : String(error)}.`,
    'Allow this site to store data (private windows may not), or keep the tab open until the run ends.',
    { cause: error },
  );
}

async function writeFile(dir: DirHandleLike, name: string, data: Blob | Uint8Array | string): Promise<void> {
  const writable = await (await dir.getFileHandle(name, { create: true })).createWritable();
  try {
    await writable.write(data);
    await writable.close();
  } catch (error) {
    await writable.abort?.().catch(() => undefined);
    throw error;
  }
}

async function readFile(dir: DirHandleLike, name: string): Promise<Blob | undefined> {
  try {
    return await (await dir.getFileHandle(name)).getFile();
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

async function readJson<T>(dir: DirHandleLike, name: string): Promise<T | undefined> {
  const blob = await readFile(dir, name);
  if (!blob) return undefined;
  try {
    return JSON.parse(await blob.text()) as T;
  } catch {
    return undefined;
  }
}

async function removeEntry(dir: DirHandleLike, name: string): Promise<void> {
  try {
    await dir.removeEntry(name, { recursive: true });
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
}

/** The records with their assigned splits, one JSON object a line (the CLI's data.jsonl format). */
export function recordsJsonl(records: readonly DataRecord[], splits: readonly SplitName[]): Blob {
  return new Blob(records.map((r, i) => JSON.stringify({ ...r, split: splits[i] }) + '\n'));
}

export function parseRecordsJsonl(text: string): DataRecord[] {
  const records: DataRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as DataRecord;
    if (typeof r?.code !== 'string' || (r.label !== 0 && r.label !== 1)) {
      throw new Error(`a line of ${DATA} is not a labelled function`);
    }
    records.push(r);
  }
  return records;
}

const lockName = (runId: string) => `vulnlab-run:${runId}`;

interface LockManagerLike {
  request(name: string, callback: () => Promise<void>): Promise<void>;
  query(): Promise<{ held?: { name?: string }[] }>;
}
function locks(): LockManagerLike | undefined {
  return (globalThis as unknown as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
}

/**
 * Marks a run as going on in this tab (a Web Lock), so other tabs do not offer to resume it.
 * Returns the release function.
 */
export function holdRunLock(runId: string): () => void {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  void locks()
    ?.request(lockName(runId), () => held)
    .catch(() => undefined);
  return release;
}

async function heldRunIds(): Promise<Set<string>> {
  const manager = locks();
  if (!manager) return new Set();
  try {
    const { held = [] } = await manager.query();
    return new Set(
      held
        .map((l) => l.name ?? '')
        .filter((n) => n.startsWith('vulnlab-run:'))
        .map((n) => n.slice(12)),
    );
  } catch {
    return new Set();
  }
}

export class RunStore {
  private rootPromise: Promise<DirHandleLike> | undefined;

  constructor(private readonly origin: () => Promise<DirHandleLike>) {}

  /** The store in this browser's OPFS, or undefined where there is none. */
  static browser(): RunStore | undefined {
    const storage = (
      globalThis as unknown as { navigator?: { storage?: { getDirectory?: () => Promise<DirHandleLike> } } }
    ).navigator?.storage;
    if (typeof storage?.getDirectory !== 'function') return undefined;
    return new RunStore(() => storage.getDirectory!());
  }

  private root(): Promise<DirHandleLike> {
    this.rootPromise ??= this.origin().then((r) => r.getDirectoryHandle(ROOT, { create: true }));
    // A failure (e.g. storage refused) is not cached: the next call tries again.
    this.rootPromise.catch(() => (this.rootPromise = undefined));
    return this.rootPromise;
  }

  private async runDir(runId: string, create = false): Promise<DirHandleLike | undefined> {
    if (!/^[A-Za-z0-9._-]+$/.test(runId)) throw new Error(`bad run id ${runId}`);
    try {
      return await (await this.root()).getDirectoryHandle(runId, { create });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Starts saving a run: manifest and data are written with its first checkpoint. */
  saver(manifest: RunManifest, records: readonly DataRecord[], splits: readonly SplitName[]): RunSaver {
    return new RunSaver(this, manifest, () => recordsJsonl(records, splits));
  }

  /** A saver for a resumed run, whose manifest and data are already stored. */
  resumedSaver(manifest: RunManifest): RunSaver {
    return new RunSaver(this, manifest, undefined);
  }

  /** @internal Used by RunSaver. */
  async writeCheckpoint(
    manifest: RunManifest,
    data: (() => Blob) | undefined,
    checkpoint: RunCheckpoint,
    nonce: number,
  ): Promise<void> {
    const dir = (await this.runDir(manifest.runId, true))!;
    if (data) {
      await writeFile(dir, DATA, data());
      await writeFile(dir, MANIFEST, JSON.stringify(manifest) + '\n');
    }
    const name = `ckpt-${checkpoint.step}-${nonce}`;
    const folder = await dir.getDirectoryHandle(name, { create: true });
    for (const file of checkpointFiles(checkpoint)) await writeFile(folder, file.name, file.bytes);
    const pointer: CurrentPointer = {
      dir: name,
      step: checkpoint.step,
      epoch: checkpoint.epoch,
      savedAt: Date.now(),
    };
    await writeFile(dir, CURRENT, JSON.stringify(pointer) + '\n');
    // The new checkpoint is in force: older ones (and any half-written one) can go.
    for await (const entry of dir.values()) {
      if (entry.kind === 'directory' && CHECKPOINT_DIR.test(entry.name) && entry.name !== name) {
        await removeEntry(dir, entry.name).catch(() => undefined);
      }
    }
  }

  /** Runs with a complete checkpoint that no tab is running now, newest first. */
  async list(): Promise<SavedRun[]> {
    let root: DirHandleLike;
    try {
      root = await this.root();
    } catch {
      return [];
    }
    const held = await heldRunIds();
    const out: SavedRun[] = [];
    for await (const entry of root.values()) {
      if (entry.kind !== 'directory' || held.has(entry.name)) continue;
      const manifest = await readJson<RunManifest>(entry, MANIFEST);
      const pointer = await readJson<CurrentPointer>(entry, CURRENT);
      if (manifest?.format !== 'vulnlab-browser-run' || !pointer) continue;
      out.push({
        runId: manifest.runId,
        name: manifest.name,
        step: pointer.step,
        epoch: pointer.epoch,
        totalSteps: manifest.totalSteps,
        savedAt: pointer.savedAt,
        model: manifest.model,
        modelName: manifest.modelName,
        dataset: manifest.dataset.name,
        records: manifest.dataset.records,
        config: manifest.config,
      });
    }
    return out.sort((a, b) => b.savedAt - a.savedAt);
  }

  async isHeldElsewhere(runId: string): Promise<boolean> {
    return (await heldRunIds()).has(runId);
  }

  /** Everything a resume needs; a typed error when the folder is missing or damaged. */
  async load(runId: string): Promise<LoadedRun> {
    const gone = () =>
      new CheckpointStorageError(
        'storage-unavailable',
        `The saved run ${runId} is no longer in this browser’s storage.`,
        'Start the run again (site data may have been cleared).',
      );
    const dir = await this.runDir(runId);
    if (!dir) throw gone();
    const manifest = await readJson<RunManifest>(dir, MANIFEST);
    const pointer = await readJson<CurrentPointer>(dir, CURRENT);
    const data = await readFile(dir, DATA);
    if (!manifest || !pointer || !data) throw gone();
    let folder: DirHandleLike;
    try {
      folder = await dir.getDirectoryHandle(pointer.dir);
    } catch {
      throw gone();
    }
    const [json, tensors] = await Promise.all(CHECKPOINT_FILES.map((name) => readFile(folder, name)));
    if (!json || !tensors) throw gone();
    const checkpoint = await readCheckpoint(await json.text(), new Uint8Array(await tensors.arrayBuffer()));
    const legacyHistory = await readJson<SavedHistory>(folder, HISTORY);
    let records: DataRecord[];
    try {
      records = parseRecordsJsonl(await data.text());
    } catch (error) {
      throw new CheckpointStorageError(
        'storage-unavailable',
        `The saved data of run ${runId} is damaged (${(error as Error).message}).`,
        'Discard this saved run and start it again.',
      );
    }
    return { manifest, checkpoint, records, ...(legacyHistory ? { legacyHistory } : {}) };
  }

  /** Bytes of every saved run (checkpoints and data). */
  async bytes(): Promise<number> {
    const total = async (dir: DirHandleLike): Promise<number> => {
      let sum = 0;
      for await (const entry of dir.values()) {
        sum += entry.kind === 'file' ? (await entry.getFile()).size : await total(entry);
      }
      return sum;
    };
    try {
      return await total(await this.root());
    } catch {
      return 0;
    }
  }

  async remove(runId: string): Promise<void> {
    await removeEntry(await this.root(), runId);
  }

  async estimate(): Promise<{ usage: number; quota: number } | undefined> {
    const storage = (
      globalThis as unknown as {
        navigator?: { storage?: { estimate?: () => Promise<{ usage?: number; quota?: number }> } };
      }
    ).navigator?.storage;
    const e = await storage?.estimate?.().catch(() => undefined);
    return e?.quota !== undefined ? { usage: e.usage ?? 0, quota: e.quota } : undefined;
  }
}

/**
 * Saves one run's checkpoints. Never throws: the first storage failure turns checkpoints off for the
 * rest of the run and is reported once through `onOff`, and the run goes on.
 */
export class RunSaver {
  private off = false;
  private saved = false;
  private nonce = 0;

  constructor(
    private readonly store: RunStore,
    readonly manifest: RunManifest,
    private data: (() => Blob) | undefined,
  ) {}

  get enabled(): boolean {
    return !this.off;
  }

  /** Whether a checkpoint of this run is on disk (written now or before a resume). */
  get hasCheckpoint(): boolean {
    return this.saved || !this.data;
  }

  async save(checkpoint: RunCheckpoint, onOff: (error: CheckpointStorageError) => void): Promise<boolean> {
    if (this.off) return false;
    try {
      await this.store.writeCheckpoint(this.manifest, this.data, checkpoint, this.nonce++);
      this.data = undefined;
      this.saved = true;
      return true;
    } catch (error) {
      this.off = true;
      onOff(error instanceof CheckpointStorageError ? error : storageError(error, 'run checkpoint'));
      return false;
    }
  }

  /** The run ended: its checkpoint is no longer needed (the result is kept by the page). */
  async discard(): Promise<void> {
    await this.store.remove(this.manifest.runId).catch(() => undefined);
  }
}
