/**
 * The batch and loss vocabulary that several layers speak: the engine consumes a `PackedBatch`
 * (reference model and GPU model alike), src/train builds one from src/data's batches, and the run
 * configuration names the objective and the attention mode. Types only.
 */

/** One function of a packed batch: where its last code token sits, its label and loss weight. */
export interface FunctionRef {
  /** Pack index. */
  pack: number;
  /** Index within the pack of the function's last code token. */
  last: number;
  label: number;
  weight: number;
}

/** What the engine trains on: B packs of L tokens each, as nested arrays. */
export interface PackedBatch {
  /** [B][L] token ids. */
  inputIds: number[][];
  /** [B][L] function index within the pack, −1 for padding. */
  segmentIds: number[][];
  /** [B][L] position ids. */
  positionIds: number[][];
  functions: FunctionRef[];
}

/**
 * `packed`: a token attends only to earlier tokens of its own function (block-diagonal causal);
 * `paper`: attention across the whole pack, as in the paper's original packing.
 */
export type AttentionMode = 'packed' | 'paper';

/** `cls`: classification head on each function's last token; `ntp`: next-token answer (" YES"/" NO"). */
export type Objective = 'cls' | 'ntp';

export interface FocalOptions {
  /** Focusing exponent; 0 gives (weighted) cross-entropy. */
  gamma: number;
  /** Weight of class 1 (class 0 gets 1 − alpha); null for no class weighting. */
  alpha: number | null;
}
