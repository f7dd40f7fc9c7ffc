/**
 * Model IO (browser, Web Worker and Node): sources, formats, tokenizer, the one `loadModel` API,
 * presets and the weight cache. Node-only pieces (file handles, directories, the disk cache) are in
 * ./node.ts so that browser bundles never pull in node:fs.
 */
export * from './errors.ts';
export * from './source.ts';
export * from './progress.ts';
export * from './files.ts';
export * from './hub.ts';
export { parseConfig, parseConfigJson } from './config.ts';
export type { GptBigCodeConfig, ResolvedConfig } from './config.ts';
export { convertTensor, fromF32, sameFormat, sourceBytes, toF32 } from './convert.ts';
export type { SourceDtype, WeightFormat } from './convert.ts';
export type { TensorEntry } from './tensors.ts';
export { readTensorBytes, rowsCols } from './tensors.ts';
export * from './safetensors.ts';
export { restrictedUnpickle } from './pickle.ts';
export type { PickleValue, StorageRef, TensorRef } from './pickle.ts';
export { readTorchBin } from './torch-bin.ts';
export { ZipReader } from './zip.ts';
export * from './gguf.ts';
export * from './tokenizer.ts';
export {
  cacheKeyFor,
  chooseWeights,
  defaultFormatFor,
  inspectModel,
  loadModel,
  matchTensors,
  parameterCount,
} from './load.ts';
export type {
  CheckpointFormat,
  InspectOptions,
  LoadedModel,
  LoadedTensorInfo,
  LoadOptions,
  TensorSink,
} from './load.ts';
export { loadModelToGpu } from './load-gpu.ts';
export type { GpuLoadedModel, GpuLoadOptions } from './load-gpu.ts';
export * from './presets.ts';
export * from './cache.ts';
export * from './browser-cache.ts';
