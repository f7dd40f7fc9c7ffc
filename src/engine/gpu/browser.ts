/// <reference types="vite/client" />
import { GpuContext } from './context.ts';
import { shaderLibraryFromRecord } from './shaders.ts';

// Same files as diskShaders (node.ts): the shaders and their included parts in shaders/lib/.
const sources = import.meta.glob<string>(['../../../shaders/*.wgsl', '../../../shaders/lib/*.wgsl'], {
  query: '?raw',
  import: 'default',
  eager: true,
});

/** The shaders bundled by Vite, keyed by path under shaders/ without extension (`matmul`, `lib/dequant`). */
export const bundledShaders = shaderLibraryFromRecord(
  Object.fromEntries(
    Object.entries(sources).map(([path, code]) => [path.replace(/^.*\/shaders\/|\.wgsl$/g, ''), code]),
  ),
);

/** Works in a page and in a dedicated worker (both expose navigator.gpu in Chromium). */
export function createBrowserContext(): Promise<GpuContext> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return GpuContext.create(nav?.gpu, bundledShaders, 'browser');
}
