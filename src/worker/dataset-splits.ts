/**
 * The Data panel's split choice applied to imported records. The default (`auto`, no fractions)
 * leaves the records as they are, so a run splits them exactly as the CLI does (the split field,
 * else a stratified split seeded by the run's seed). Splits chosen by hand are written into the
 * records' split field, so every run — and a resume, and the CLI given the saved data — uses them.
 */
import { assignSplits, type SplitResult } from '../data/splits.ts';
import type { DataRecord } from '../data/types.ts';
import type { SplitInfo, SplitOptions } from './protocol.ts';

/** Seed of the default split's preview when the page gives none (the run config's default seed). */
const DEFAULT_SEED = 42;

export interface DatasetSplit {
  /** What runs train on (the imported records, or copies carrying the chosen split). */
  records: DataRecord[];
  splits: SplitResult;
  info: Omit<SplitInfo, 'contextLength'>;
}

export function splitDataset(imported: readonly DataRecord[], requested?: SplitOptions): DatasetSplit {
  const options: SplitOptions = requested ?? { strategy: 'auto' };
  const seed = options.seed ?? DEFAULT_SEED;
  const splits = assignSplits(imported, {
    strategy: options.strategy,
    fractions: options.fractions,
    groupBy: options.groupBy,
    seed,
  });
  const fixed = options.strategy !== 'auto' || options.fractions !== undefined;
  const records = fixed ? imported.map((r, i) => ({ ...r, split: splits.assignment[i] })) : [...imported];
  return {
    records,
    splits,
    info: {
      strategy: splits.strategy,
      requested: options,
      seed,
      groupBy: splits.groupBy,
      notes: splits.notes,
      fixed,
    },
  };
}
