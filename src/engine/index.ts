/**
 * Public surface of the engine for the layers above it: src/train and src/cli import the engine
 * from here, never from its inner modules (eslint.config.js enforces it; docs/ARCHITECTURE.md).
 * It holds the device layer, the GPT-BigCode model (config, memory plan, GPU model and training
 * step, optimizer), the weight formats and the typed errors, and re-exports what the engine takes
 * from src/shared (the seeded RNG, the error base class, the batch and loss types).
 *
 * Not here, on purpose:
 * - the platform entry points `gpu/node.ts` (Dawn, Node only) and `gpu/browser.ts`
 *   (navigator.gpu): importing this module must work in both, so they are imported directly;
 * - kernels and float64 references: tests, benchmarks and the worker's self-test import them from
 *   their own modules;
 * - the page: it bundles no engine, so the UI and the page-safe modules (eslint.config.js PAGE_SAFE)
 *   import the engine's plain-arithmetic modules (errors, quant, model/config, memory-plan, sizes)
 *   directly and never this barrel, which pulls in the GPU model.
 */
export * from './errors.ts';
export { GpuContext, ceilDiv, summarizeAdapter } from './gpu/index.ts';
export type { AdapterSummary, Dispatch } from './gpu/index.ts';
export { Rng, randomArray } from './random.ts';
export * from './quant.ts';
export {
  ConfigError,
  EMBEDDING_LORA_A,
  EMBEDDING_LORA_B,
  LINEAR_TARGETS,
  LORA_TARGETS,
  blockPrefix,
  checkParams,
  linearShape,
  loraScaling,
  numel,
  resolveConfig,
} from './model/config.ts';
export type {
  Activation,
  GptBigCodeConfig,
  LinearTarget,
  LoraConfig,
  LoraTarget,
  ParamSpec,
  ResolvedConfig,
  Trainable,
} from './model/config.ts';
export { matrixBytes, planMemory } from './model/memory-plan.ts';
export type { MemoryPlan, MemoryPlanOptions } from './model/memory-plan.ts';
export { parameterCount } from './model/sizes.ts';
export { DecoderGpu } from './model/decoder-gpu.ts';
export type { GpuModelOptions } from './model/decoder-gpu.ts';
export { TrainStep } from './model/train-step.ts';
export type { StepShape } from './model/train-step.ts';
export {
  baseParamSpecs,
  describeDecoder,
  gptBigCodeDecoder,
  llamaFamilyDecoder,
  loraParamSpecs,
  trainableSpecs,
} from './model/decoder.ts';
export type { DecoderDesc, ModelConfig } from './model/decoder.ts';
export type { LlamaFamilyConfig } from './model/llama-family.ts';
export { ModelOptimizer } from './model/optimizer.ts';
export type { OptimizerOptions, OptimizerState } from './model/optimizer.ts';
export { focalLossRef } from './reference/loss.ts';
export { attributeBatch, DEFAULT_IG_STEPS } from './model/attribution.ts';
export type {
  AttributionMethod,
  AttributionOptions,
  GroupAttribution,
  ScoreTerm,
} from './model/attribution.ts';
export type { AttentionMode, FocalOptions, FunctionRef, Objective, PackedBatch } from '../shared/batch.ts';
