import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const DEMO_DIR = join(ROOT, 'public/models/demo');
export const FIXTURES = join(ROOT, 'tests/fixtures/io');

export function readBytes(path: string): Uint8Array {
  const b = readFileSync(path);
  return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** The demo model's files: `which` picks the weights (safetensors, .bin or GGUF). */
export function demoFiles(
  which: 'safetensors' | 'bin' | 'gguf' | 'all' = 'safetensors',
): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json'])
    files.set(f, readBytes(join(DEMO_DIR, f)));
  if (which === 'safetensors' || which === 'all')
    files.set('model.safetensors', readBytes(join(DEMO_DIR, 'model.safetensors')));
  if (which === 'bin' || which === 'all')
    files.set('pytorch_model.bin', readBytes(join(FIXTURES, 'demo/pytorch_model.bin')));
  if (which === 'gguf' || which === 'all')
    files.set('demo-q8_0.gguf', readBytes(join(FIXTURES, 'demo/demo-q8_0.gguf')));
  return files;
}

/** Byte equality without vitest's slow deep-equal on large typed arrays. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}
