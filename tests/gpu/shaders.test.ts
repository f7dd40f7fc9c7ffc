/**
 * The shader library's `// #include "NAME"` (src/engine/gpu/shaders.ts): expansion, include-once,
 * cycle and unknown-name errors, caching, and the real shaders/ as both loaders (Node's disk read,
 * Vite's glob) see them. No GPU needed.
 */
import { describe, expect, it } from 'vitest';
import { InternalError } from '../../src/engine/errors.ts';
import { bundledShaders } from '../../src/engine/gpu/browser.ts';
import { diskShaders } from '../../src/engine/gpu/node.ts';
import { shaderLibraryFromRecord } from '../../src/engine/gpu/shaders.ts';

const lib = (sources: Record<string, string>) => shaderLibraryFromRecord(sources);

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}

describe('shader library includes', () => {
  it('replaces an include line by the included shader, recursively', () => {
    const shaders = lib({
      main: 'a\n// #include "lib/b"\nz\n',
      'lib/b': 'b1\n  //  #include   "lib/c"  \nb2\n',
      'lib/c': 'c\n',
    });
    expect(shaders.get('main')).toBe('a\nb1\nc\nb2\nz\n');
    expect(shaders.get('lib/b')).toBe('b1\nc\nb2\n');
  });

  it('leaves other comments and include-like text that is not alone on its line', () => {
    const code = '// #include lib/b\nlet x = 1; // #include "lib/b"\n// see #include "lib/b"\n';
    expect(lib({ main: code, 'lib/b': 'B' }).get('main')).toBe(code);
  });

  it('includes each shader once per expanded shader (diamond)', () => {
    const shaders = lib({
      main: '// #include "x"\n// #include "y"\n// #include "x"\nend',
      x: '// #include "common"\nX',
      y: '// #include "common"\nY',
      common: 'fn common() {}',
    });
    const code = shaders.get('main');
    expect(code.match(/fn common/g)).toHaveLength(1);
    expect(code.match(/^X$/gm)).toHaveLength(1);
    expect(code).toBe('fn common() {}\nX\n\nY\n\nend');
    // Once per expanded shader, not once per library: x alone still gets common.
    expect(shaders.get('x')).toBe('fn common() {}\nX');
  });

  it('rejects a cycle, naming the chain', () => {
    const shaders = lib({ main: '// #include "a"', a: '// #include "b"', b: 'x\n// #include "a"' });
    const error = thrown(() => shaders.get('main'));
    expect(error).toBeInstanceOf(InternalError);
    expect(error.message).toContain('main → a → b → a');
    expect(thrown(() => lib({ self: '// #include "self"' }).get('self')).message).toContain('self → self');
  });

  it('rejects an unknown name, naming the chain', () => {
    const shaders = lib({ main: '// #include "a"', a: '// #include "lib/missing"' });
    const error = thrown(() => shaders.get('main'));
    expect(error).toBeInstanceOf(InternalError);
    expect(error.message).toContain('"lib/missing"');
    expect(error.message).toContain('main → a');
    expect(thrown(() => shaders.get('nope'))).toBeInstanceOf(InternalError);
    expect(thrown(() => shaders.get('toString')).message).toContain('"toString" not found');
  });

  it('expands a shader once and caches the result', () => {
    let reads = 0;
    const sources: Record<string, string> = { 'lib/b': 'B' };
    Object.defineProperty(sources, 'main', {
      enumerable: true,
      get: () => {
        reads++;
        return '// #include "lib/b"';
      },
    });
    const shaders = lib(sources);
    expect(shaders.get('main')).toBe('B');
    expect(shaders.get('main')).toBe('B');
    expect(reads).toBe(1);
  });
});

describe('shaders/ as loaded', () => {
  const disk = diskShaders();

  it('Node and Vite load the same files, shaders/lib/ included', () => {
    expect(disk.names()).toEqual(bundledShaders.names());
    expect(disk.names()).toEqual(expect.arrayContaining(['lib/dequant', 'lib/tiled', 'lib/workgroup']));
    for (const name of disk.names()) expect(bundledShaders.get(name), name).toBe(disk.get(name));
  });

  it('every shader expands, with no include left and each shared function defined once', () => {
    for (const name of disk.names()) {
      const code = disk.get(name);
      expect(code, name).not.toMatch(/^[ \t]*\/\/[ \t]*#include[ \t]+"/m);
      for (const fn of ['wordAt', 'w4', 'w4Edge', 'accumulate', 'workgroupIndex']) {
        expect(
          (code.match(new RegExp(`\\bfn ${fn}\\(`, 'g')) ?? []).length,
          `${name}: ${fn}`,
        ).toBeLessThanOrEqual(1);
      }
    }
    expect(disk.get('matmul_weight')).toMatch(/fn w4Edge\(/);
    expect(disk.get('matmul_weight_tiled')).toMatch(/fn w4Edge\(/);
    expect(disk.get('matmul_tiled')).toMatch(/fn main_scalar\(/);
    expect(disk.get('gelu')).toMatch(/fn workgroupIndex\(/);
  });
});
