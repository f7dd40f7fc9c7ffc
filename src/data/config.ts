/**
 * The data settings of a run, as recorded in its config (so a run can be reproduced from it).
 */
import type { BatchMode } from './batching';
import type { NormalizeOptions } from './normalize';
import type { GroupKey, SplitFractions, SplitStrategy } from './splits';
import type { TruncationPolicy } from './tokenize';

export interface DataRunConfig {
  normalize: NormalizeOptions;
  split: { strategy: SplitStrategy; groupBy?: GroupKey; fractions: SplitFractions; seed: number };
  truncation: TruncationPolicy;
  batching: {
    mode: BatchMode;
    packLength: number;
    maxFunctionsPerPack: number;
    rowsPerBatch: number;
    padTo?: 'longest' | 'pack-length';
    seed: number;
  };
}

/** The lab's defaults: the paper's packing length and cap, block-diagonal packing, split by commit. */
export const DEFAULT_DATA_CONFIG: DataRunConfig = {
  normalize: { stripComments: false, collapseWhitespace: false },
  split: {
    strategy: 'auto',
    groupBy: 'commit',
    fractions: { train: 0.8, validation: 0.1, test: 0.1 },
    seed: 1,
  },
  truncation: 'keep-head',
  batching: { mode: 'packed', packLength: 2048, maxFunctionsPerPack: 200, rowsPerBatch: 1, seed: 1 },
};
