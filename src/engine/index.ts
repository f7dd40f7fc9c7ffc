/**
 * Public surface of the engine for the layers above it (io, data, train, worker, cli): the device
 * layer, the GPT-BigCode model (config, memory plan, GPU model and training step, optimizer), typed
 * errors and the seeded RNG. Kernels and float64 references are imported from their own modules by
 * tests and benchmarks.
 */
export * from './errors.ts';
export { GpuContext, ceilDiv, summarizeAdapter } from './gpu/index.ts';
export type { AdapterSummary, Dispatch } from './gpu/index.ts';
export { Rng, randomArray } from './random.ts';
export type { WeightFormat } from './quant.ts';
export {
  ConfigError,
  LORA_TARGETS,
  baseParamSpecs,
  checkParams,
  loraParamSpecs,
  loraScaling,
  numel,
  resolveConfig,
  trainableSpecs,
} from './model/config.ts';
export type {
  Activation,
  GptBigCodeConfig,
  LoraConfig,
  LoraTarget,
  ParamSpec,
  ResolvedConfig,
  Trainable,
} from './model/config.ts';
export { matrixBytes, planMemory } from './model/memory-plan.ts';
export type { MemoryPlan, MemoryPlanOptions } from './model/memory-plan.ts';
export { GptBigCodeGpu, TrainStep } from './model/gpt-bigcode.ts';
export type { GpuModelOptions, Objective, StepShape } from './model/gpt-bigcode.ts';
export { ModelOptimizer } from './model/optimizer.ts';
export type { OptimizerOptions } from './model/optimizer.ts';
export type { FunctionRef, PackedBatch } from './reference/gptbigcode.ts';
export type { AttentionMode, FocalOptions } from './reference/loss.ts';
