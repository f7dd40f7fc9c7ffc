import type * as tfjs from '@tensorflow/tfjs-core';
import { nodeGpuApi } from '../../src/engine/gpu/node.ts';

let loaded: Promise<typeof tfjs> | undefined;

/**
 * The peer: TensorFlow.js with its WebGPU backend on the same Dawn instance (same adapter) as the
 * engine. tfjs looks for `navigator.gpu`, which Node 20 lacks, so it is provided from Dawn.
 */
export function tfjsWebGpu(): Promise<typeof tfjs> {
  loaded ??= (async () => {
    const gpu = await nodeGpuApi();
    const global = globalThis as { navigator?: unknown };
    global.navigator ??= { gpu, userAgent: 'node' };
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs could not start its WebGPU backend');
    await tf.ready();
    return tf;
  })();
  return loaded;
}
