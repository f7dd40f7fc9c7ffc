export { GpuContext, requestAdapter, summarizeAdapter } from './context.ts';
export type { AdapterSummary, GpuHost, Binding, Dispatch, PipelineOptions } from './context.ts';
export { BufferPool, bucketSize } from './pool.ts';
export { shaderLibraryFromRecord } from './shaders.ts';
export type { ShaderLibrary } from './shaders.ts';
export { timeGpu } from './timing.ts';
export type { GpuTiming } from './timing.ts';

export const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);
