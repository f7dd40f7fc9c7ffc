import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GpuContext } from './context.ts';
import { shaderLibraryFromRecord, type ShaderLibrary } from './shaders.ts';

/** `shaders/` at the repository root, found relative to this file (works under tsx and Vitest). */
export const SHADER_DIR = fileURLToPath(new URL('../../../shaders/', import.meta.url));

/** `shaders/*.wgsl` and the included parts `shaders/lib/*.wgsl` (named `lib/<file>`), as browser.ts. */
export function diskShaders(dir = SHADER_DIR): ShaderLibrary {
  const sources: Record<string, string> = {};
  for (const sub of ['', 'lib/']) {
    if (sub !== '' && !existsSync(`${dir}/${sub}`)) continue;
    for (const file of readdirSync(`${dir}/${sub}`)) {
      if (file.endsWith('.wgsl'))
        sources[sub + file.slice(0, -5)] = readFileSync(`${dir}/${sub}${file}`, 'utf8');
    }
  }
  return shaderLibraryFromRecord(sources);
}

let nodeGpu: Promise<GPU> | undefined;

/** Dawn's WebGPU for Node (npm `webgpu`); its globals (GPUBufferUsage…) are installed once. */
export function nodeGpuApi(): Promise<GPU> {
  nodeGpu ??= import('webgpu').then(({ create, globals }) => {
    Object.assign(globalThis, globals);
    return create([]);
  });
  return nodeGpu;
}

export async function createNodeContext(shaders: ShaderLibrary = diskShaders()): Promise<GpuContext> {
  return GpuContext.create(await nodeGpuApi(), shaders, 'node');
}
