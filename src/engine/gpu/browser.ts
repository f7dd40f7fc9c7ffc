/// <reference types="vite/client" />
import { GpuContext } from './context.ts';
import { shaderLibraryFromRecord } from './shaders.ts';

const sources = import.meta.glob<string>('../../../shaders/*.wgsl', {
  query: '?raw',
  import: 'default',
  eager: true,
});

/** The shaders bundled by Vite, keyed by file name without extension. */
export const bundledShaders = shaderLibraryFromRecord(
  Object.fromEntries(
    Object.entries(sources).map(([path, code]) => [path.replace(/^.*\/|\.wgsl$/g, ''), code]),
  ),
);

/** Works in a page and in a dedicated worker (both expose navigator.gpu in Chromium). */
export function createBrowserContext(): Promise<GpuContext> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return GpuContext.create(nav?.gpu, bundledShaders, 'browser');
}
