/** The data layer: datasets in, packed batches out. No DOM, no React; runs in a Web Worker and in Node. */
export * from './types';
export { DataError, SizeLimitError } from './errors';
export { importDataset, formatFromName, DEFAULT_MAX_UNCOMPRESSED } from './import';
export type {
  DatasetSource,
  DatasetFile,
  ImportOptions,
  ImportResult,
  ImportProgress,
  JavaLabelling,
} from './import';
export type { ByteData } from './bytes';
export { detectFieldMapping, makeLabelParser, normalizeCwe, FIELD_CANDIDATES } from './fields';
export type { FieldMapping, LabelValues } from './fields';
export { extractJavaMethods, labelFromPath, julietLabel, scrubGiveaways } from './java';
export type { ExtractedMethod, ExtractResult } from './java';
export { stripComments, collapseWhitespace, normalizeCode, duplicateKey } from './normalize';
export type { NormalizeOptions } from './normalize';
export { qualityReport } from './quality';
export type { QualityReport, QualityOptions, QualityWarning, QualityWarningCode } from './quality';
export { assignSplits, applySplits, DEFAULT_FRACTIONS } from './splits';
export type {
  SplitOptions,
  SplitResult,
  SplitStrategy,
  SplitSummary,
  GroupKey,
  SplitFractions,
} from './splits';
export { tokenizeRecords, ByteTokenizer } from './tokenize';
export type {
  Tokenizer,
  TokenizeOptions,
  TokenizedExample,
  TokenizeStats,
  TruncationPolicy,
} from './tokenize';
export { makeBatches, firstFit, epochRng, DEFAULT_MAX_FUNCTIONS_PER_PACK } from './batching';
export type { Batch, BatchExample, BatchMode, BatchOptions, BatchStats, PackedFunction } from './batching';
export { sampleFunctionLengths, quantile } from './lengths';
export type { LengthDistribution } from './lengths';
export { DEFAULT_DATA_CONFIG } from './config';
export type { DataRunConfig } from './config';
