/** Shared by `eval` and `scan`: a base model plus an adapter folder as a Detector, and code → examples. */
import type { GpuContext } from '../engine/index.ts';
import type { DataRecord } from '../data/types.ts';
import { resolveConfig, type RunConfig } from '../train/config.ts';
import { Detector } from '../train/detector.ts';
import type { DetectorSettings } from '../train/export.ts';
import { ntpAnswers, prepareRunData } from '../train/prepare.ts';
import type { RunExample } from '../train/run.ts';
import { loadCliModel, readAdapterDir } from './inputs.ts';

export interface OpenDetector {
  detector: Detector;
  settings?: DetectorSettings;
  /** Tokenizes records the way the adapter's run did (truncation, normalization, context). */
  examples(records: readonly DataRecord[]): RunExample[];
}

export async function openDetector(
  ctx: GpuContext,
  model: string,
  adapterDir: string,
  usage: string,
): Promise<OpenDetector> {
  const { adapter, settings } = await readAdapterDir(adapterDir, usage);
  const prepared = await loadCliModel(model);
  if (settings && settings.baseModel !== model) {
    console.warn(`note: the adapter was trained on ${settings.baseModel}; scoring with ${model}.`);
  }
  const ntp = adapter.config.taskType === 'CAUSAL_LM';
  const detector = await Detector.create(ctx, prepared.model, adapter, {
    packLength: settings?.packLength,
    mode: settings?.batching === 'paper' ? 'paper' : 'packed',
    // The base as the run held it: the same scores, the same memory.
    weightFormat: settings?.weightFormat,
    answers: ntp ? ntpAnswers(prepared.tokenizer) : undefined,
  });
  const config: RunConfig = resolveConfig({
    objective: ntp ? 'ntp' : 'cls',
    ...(settings && { truncation: settings.truncation, normalize: settings.normalize }),
  });
  return {
    detector,
    settings,
    examples(records) {
      // Every record is scored, whatever split it came from: the split only names the CSV group.
      const { data } = prepareRunData(
        records.map((r) => ({ ...r, split: 'test' as const })),
        prepared.tokenizer,
        config,
        detector.packLength,
      );
      return data.test;
    },
  };
}
