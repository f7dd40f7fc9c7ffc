/**
 * What every layer may import: the seeded RNG, the error base class and its codes, and the batch
 * and loss types. Plain data and arithmetic; it imports nothing from src/ (docs/ARCHITECTURE.md).
 */
export { VulnLabError, formatBytes, type VulnLabErrorCode } from './errors.ts';
export { Rng, randomArray } from './random.ts';
export type { AttentionMode, FocalOptions, FunctionRef, Objective, PackedBatch } from './batch.ts';
