/**
 * What the CLI commands read: the base model (demo, a folder or a Hub id), datasets and adapter
 * folders. Unreadable inputs are usage errors (exit 2) that name the file.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importDataset } from '../data/import.ts';
import type { DataRecord } from '../data/types.ts';
import { WeightCache } from '../io/cache.ts';
import type { ModelFiles } from '../io/files.ts';
import { NodeDirCacheStore } from '../io/node-cache.ts';
import { HubModelFiles } from '../io/hub.ts';
import { NodeDirModelFiles } from '../io/node-files.ts';
import {
  DETECTOR_SETTINGS_FILE,
  importPeftAdapter,
  readDetectorSettings,
  type DetectorSettings,
  type ImportedAdapter,
} from '../train/export.ts';
import { loadRunModel, type PreparedModel } from '../train/prepare.ts';
import { UsageError } from './flags.ts';

export const DEMO_MODEL_DIR = fileURLToPath(new URL('../../public/models/demo/', import.meta.url));

/**
 * `demo`, a local folder, or a Hugging Face repo id — token from HF_TOKEN (sent only to the Hub),
 * HF_ENDPOINT for a mirror, as Hugging Face's own tools read them.
 */
export function modelFiles(model: string): ModelFiles {
  if (model === 'demo') return new NodeDirModelFiles(DEMO_MODEL_DIR);
  if (existsSync(model) && statSync(model).isDirectory()) return new NodeDirModelFiles(resolve(model));
  return new HubModelFiles(model, {
    token: process.env.HF_TOKEN || undefined,
    hubBaseUrl: process.env.HF_ENDPOINT || undefined,
  });
}

/**
 * Where Hub downloads are kept, converted, between runs: $VULNLAB_CACHE, else ~/.cache/vulnlab.
 * Local folders are read in place.
 */
export function modelCache(model: string): WeightCache | undefined {
  if (!(modelFiles(model) instanceof HubModelFiles)) return undefined;
  const root = process.env.VULNLAB_CACHE || join(homedir(), '.cache', 'vulnlab');
  return new WeightCache(new NodeDirCacheStore(root));
}

/** The base model for a run or a detector, with the Hub cache when it comes from the Hub. */
export function loadCliModel(model: string): Promise<PreparedModel> {
  return loadRunModel(modelFiles(model), model, { cache: modelCache(model) });
}

async function readInput(file: string, role: string, usage: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new UsageError(`Cannot read ${role} file ${file}: ${(error as Error).message}`, usage);
  }
}

/** A dataset file's records; the importer's issues (skipped lines…) are printed, not fatal. */
export async function readRecords(file: string, role: string, usage: string): Promise<DataRecord[]> {
  const result = await importDataset({ name: basename(file), data: await readInput(file, role, usage) });
  for (const issue of result.issues.slice(0, 5)) {
    console.warn(`${file}${issue.line ? `:${issue.line}` : ''}: ${issue.message}`);
  }
  if (result.issues.length > 5) console.warn(`… ${result.issues.length - 5} more issues in ${file}`);
  return result.records;
}

export interface AdapterDir {
  adapter: ImportedAdapter;
  /** The run's threshold and data settings, when the adapter came from a VulnLab run. */
  settings?: DetectorSettings;
}

/** A PEFT adapter folder (adapter_config.json + adapter_model.safetensors [+ vulnlab_detector.json]). */
export async function readAdapterDir(dir: string, usage: string): Promise<AdapterDir> {
  const config = await readInput(join(dir, 'adapter_config.json'), 'adapter config', usage);
  const weights = await readInput(join(dir, 'adapter_model.safetensors'), 'adapter weights', usage);
  const adapter = await importPeftAdapter(config.toString('utf8'), new Uint8Array(weights));
  const settingsPath = join(dir, DETECTOR_SETTINGS_FILE);
  const settings = existsSync(settingsPath)
    ? readDetectorSettings(await readFile(settingsPath, 'utf8'))
    : undefined;
  return { adapter, settings };
}
