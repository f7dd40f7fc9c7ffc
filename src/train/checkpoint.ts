/**
 * Run checkpoints: everything a run needs to continue to the same weights as if it had never
 * stopped — trainable tensors, AdamW moments and step, the data cursor (epoch and batch; batches are
 * a pure function of seed and epoch), the LoRA dropout step (the masks are keyed by it), the best
 * evaluation so far, the live config with its change history, the run's curves (history.ts) and the
 * running totals.
 * Two files: `checkpoint.json` (state) and `checkpoint.safetensors` (tensors, f32).
 */
import { toF32 } from '../io/convert.ts';
import { readSafetensorsHeader, writeSafetensors } from '../io/safetensors.ts';
import { MemoryByteSource } from '../io/source.ts';
import { readTensorBytes } from '../io/tensors.ts';
import type { OptimizerState } from '../engine/index.ts';
import { resolveConfig, type RunConfig } from './config.ts';
import type { ExportedFile } from './export.ts';
import { RunHistory, type SerializedHistory } from './history.ts';
import { RunError, type RunData, type RunHistoryEntry } from './types.ts';

export const CHECKPOINT_FILES = ['checkpoint.json', 'checkpoint.safetensors'] as const;

export interface RunCheckpoint {
  /** The run's config with every live change applied so far. */
  config: RunConfig;
  /** Base model name (recorded; a resume with another model is refused). */
  model: string;
  /** Fingerprint of the training data: a resume on other data is refused. */
  data: string;
  /** Optimizer steps done. */
  step: number;
  /** Data cursor: the next batch to train on. */
  epoch: number;
  batch: number;
  dropoutStep: number;
  optimizer: OptimizerState;
  trainables: Map<string, Float32Array>;
  best?: { step: number; auc: number; trainables: Map<string, Float32Array> };
  history: RunHistoryEntry[];
  /** The run's curves up to this step (absent in checkpoints written before they were kept). */
  curves?: SerializedHistory;
  totals: { trainMs: number; trainTokens: number; trainFunctions: number; nonFinite: number };
}

interface CheckpointJson extends Omit<RunCheckpoint, 'optimizer' | 'trainables' | 'best'> {
  format: 'vulnlab-run-checkpoint';
  version: 1;
  optimizerStep: number;
  best?: { step: number; auc: number };
}

/** FNV-1a over the training split's tokens, labels and weights (order included). */
export function dataFingerprint(data: RunData): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h ^= x & 0xffffffff;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  for (const e of data.train) {
    mix(e.tokens.length);
    for (const t of e.tokens) mix(t);
    mix(e.label);
    mix(Math.round(e.weight * 1e6));
  }
  return `${data.train.length}:${h.toString(16).padStart(8, '0')}`;
}

const PARAM = 'param/';
const MOMENT_M = 'adam.m/';
const MOMENT_V = 'adam.v/';
const BEST = 'best/';

export function checkpointFiles(checkpoint: RunCheckpoint): ExportedFile[] {
  const { optimizer, trainables, best, ...state } = checkpoint;
  const json: CheckpointJson = {
    format: 'vulnlab-run-checkpoint',
    version: 1,
    ...state,
    optimizerStep: optimizer.step,
    best: best && { step: best.step, auc: best.auc },
  };
  const entry = (name: string, values: Float32Array) => ({
    name,
    dtype: 'F32' as const,
    shape: [values.length],
    data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  });
  const tensors = [
    ...[...trainables].map(([name, v]) => entry(PARAM + name, v)),
    ...[...optimizer.moments].flatMap(([name, { m, v }]) => [
      entry(MOMENT_M + name, m),
      entry(MOMENT_V + name, v),
    ]),
    ...(best ? [...best.trainables].map(([name, v]) => entry(BEST + name, v)) : []),
  ];
  return [
    { name: CHECKPOINT_FILES[0], bytes: new TextEncoder().encode(JSON.stringify(json) + '\n') },
    { name: CHECKPOINT_FILES[1], bytes: writeSafetensors(tensors) },
  ];
}

const corrupt = (what: string) =>
  new RunError(
    `The checkpoint is damaged: ${what}.`,
    'Start the run again (or resume from an earlier copy of the checkpoint folder).',
  );

export async function readCheckpoint(json: string, tensors: Uint8Array): Promise<RunCheckpoint> {
  let state: CheckpointJson;
  try {
    state = JSON.parse(json) as CheckpointJson;
  } catch (error) {
    throw corrupt(`checkpoint.json is not JSON (${(error as Error).message})`);
  }
  if (state?.format !== 'vulnlab-run-checkpoint' || state.version !== 1) {
    throw new RunError(
      'This is not a VulnLab run checkpoint (version 1).',
      'Pick the checkpoint folder a run wrote (checkpoint.json + checkpoint.safetensors).',
    );
  }
  for (const key of ['step', 'epoch', 'batch', 'dropoutStep', 'optimizerStep'] as const) {
    if (!Number.isInteger(state[key]) || state[key] < 0) throw corrupt(`${key} is ${String(state[key])}`);
  }
  let header;
  try {
    header = await readSafetensorsHeader(new MemoryByteSource(tensors, CHECKPOINT_FILES[1]));
  } catch (error) {
    throw corrupt(`checkpoint.safetensors does not parse (${(error as Error).message})`);
  }
  const trainables = new Map<string, Float32Array>();
  const bestTrainables = new Map<string, Float32Array>();
  const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
  for (const entry of header.tensors) {
    const values = toF32(entry.dtype, await readTensorBytes(entry), 1, entry.shape[0] ?? 1);
    const [prefix, name] = splitName(entry.name);
    if (prefix === PARAM) trainables.set(name, values);
    else if (prefix === BEST) bestTrainables.set(name, values);
    else if (prefix === MOMENT_M || prefix === MOMENT_V) {
      const slot = moments.get(name) ?? { m: new Float32Array(0), v: new Float32Array(0) };
      slot[prefix === MOMENT_M ? 'm' : 'v'] = values;
      moments.set(name, slot);
    } else throw corrupt(`unexpected tensor ${entry.name}`);
  }
  if (state.best && bestTrainables.size !== trainables.size) throw corrupt('the best weights are incomplete');
  let curves: SerializedHistory | undefined;
  if (state.curves !== undefined) {
    try {
      curves = RunHistory.deserialize(state.curves).serialize();
    } catch (error) {
      throw corrupt(`its curves do not read (${(error as Error).message})`);
    }
  }
  return {
    config: resolveConfig(state.config),
    model: state.model,
    data: state.data,
    step: state.step,
    epoch: state.epoch,
    batch: state.batch,
    dropoutStep: state.dropoutStep,
    optimizer: { step: state.optimizerStep, moments },
    trainables,
    best: state.best && { ...state.best, trainables: bestTrainables },
    history: state.history ?? [],
    curves,
    totals: state.totals,
  };
}

function splitName(name: string): [string, string] {
  const cut = name.indexOf('/') + 1;
  return [name.slice(0, cut), name.slice(cut)];
}
