/**
 * WGSL sources live in `shaders/*.wgsl`. The browser gets them through Vite (`?raw`), Node reads the
 * same files from disk; the engine only sees this interface.
 */
import { InternalError } from '../errors.ts';
export interface ShaderLibrary {
  get(name: string): string;
  names(): string[];
}

export function shaderLibraryFromRecord(sources: Record<string, string>): ShaderLibrary {
  return {
    get(name) {
      const code = sources[name];
      if (code === undefined) {
        throw new InternalError(
          `Shader "${name}" not found; known shaders: ${Object.keys(sources).sort().join(', ')}`,
        );
      }
      return code;
    },
    names: () => Object.keys(sources).sort(),
  };
}
