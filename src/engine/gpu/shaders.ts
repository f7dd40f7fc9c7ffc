/**
 * WGSL sources live in `shaders/*.wgsl`, with parts shared between shaders in `shaders/lib/*.wgsl`
 * (named `lib/<file>`). The browser gets them through Vite (`?raw`, src/engine/gpu/browser.ts), Node
 * reads the same files from disk (src/engine/gpu/node.ts); the engine only sees this interface.
 *
 * WGSL has no include, so the library has a minimal one: a line that is exactly
 * `// #include "NAME"` (a WGSL comment, so WGSL tools read the file as it is) is replaced by the
 * text of shader NAME, itself expanded. Each shader is included at most once per expanded shader (a
 * later include of the same name becomes an empty line); an include cycle or an unknown name is an
 * InternalError naming the chain. `get()` returns the expanded source (cached), so Node and the
 * browser compile the same text. Included lines shift the line numbers in compiler messages.
 */
import { InternalError } from '../errors.ts';
export interface ShaderLibrary {
  /** The shader's source with its includes expanded. */
  get(name: string): string;
  names(): string[];
}

/** `// #include "NAME"` alone on a line (leading / trailing blanks allowed). */
const INCLUDE = /^[ \t]*\/\/[ \t]*#include[ \t]+"([^"]+)"[ \t]*$/gm;

export function shaderLibraryFromRecord(sources: Record<string, string>): ShaderLibrary {
  const expanded = new Map<string, string>();
  const known = (): string => Object.keys(sources).sort().join(', ');

  // `chain`: the shaders being expanded, outermost first; `seen`: every shader already in the output.
  const expand = (name: string, chain: readonly string[], seen: Set<string>): string => {
    const code = Object.hasOwn(sources, name) ? sources[name] : undefined;
    if (code === undefined) {
      const from = chain.length > 0 ? ` (included by ${chain.join(' → ')})` : '';
      throw new InternalError(`Shader "${name}" not found${from}; known shaders: ${known()}`);
    }
    seen.add(name);
    const path = [...chain, name];
    return code.replace(INCLUDE, (_line, included: string) => {
      if (path.includes(included)) {
        throw new InternalError(`Shader include cycle: ${[...path, included].join(' → ')}`);
      }
      if (seen.has(included)) return '';
      return expand(included, path, seen).replace(/\n$/, '');
    });
  };

  return {
    get(name) {
      let code = expanded.get(name);
      if (code === undefined) {
        code = expand(name, [], new Set());
        expanded.set(name, code);
      }
      return code;
    },
    names: () => Object.keys(sources).sort(),
  };
}
