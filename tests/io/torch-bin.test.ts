import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { toF32 } from '../../src/io/convert.ts';
import { UnsafePickleError } from '../../src/io/errors.ts';
import { restrictedUnpickle } from '../../src/io/pickle.ts';
import { readSafetensorsHeader } from '../../src/io/safetensors.ts';
import { MemoryByteSource } from '../../src/io/source.ts';
import { readTensorBytes, rowsCols } from '../../src/io/tensors.ts';
import { readTorchBin } from '../../src/io/torch-bin.ts';
import { DEMO_DIR, FIXTURES, readBytes, sameBytes } from './helpers/fixtures.ts';
import { torchZip } from './helpers/torch-zip.ts';

const bin = (name: string) => new MemoryByteSource(readBytes(join(FIXTURES, name)), name);

describe('pytorch_model.bin (restricted unpickler)', () => {
  it('reads F16, BF16 and F32 storages, including a view at a storage offset (values from torch)', async () => {
    const expected = JSON.parse(readFileSync(join(FIXTURES, 'dtypes.json'), 'utf8')) as Record<
      string,
      { shape: number[]; values: number[] }
    >;
    const tensors = await readTorchBin(bin('dtypes.bin'));
    expect(tensors.map((t) => [t.name, t.dtype])).toEqual([
      ['half', 'F16'],
      ['bf16', 'BF16'],
      ['view', 'F32'],
      ['scalarish', 'F32'],
    ]);
    for (const t of tensors) {
      expect(t.shape).toEqual(expected[t.name].shape);
      const values = Array.from(toF32(t.dtype, await readTensorBytes(t), ...rowsCols(t.shape)));
      expect(values).toEqual(expected[t.name].values);
    }
  });

  it('reads the demo checkpoint saved by torch.save with the same values as model.safetensors', async () => {
    const fromBin = await readTorchBin(bin('demo/pytorch_model.bin'));
    const st = await readSafetensorsHeader(
      new MemoryByteSource(readBytes(join(DEMO_DIR, 'model.safetensors'))),
    );
    expect(fromBin.map((t) => t.name)).toEqual([...st.tensors.map((t) => t.name), 'lm_head.weight']);
    for (const t of st.tensors) {
      const b = fromBin.find((x) => x.name === t.name)!;
      expect(b.shape).toEqual(t.shape);
      expect(sameBytes(await readTensorBytes(b), await readTensorBytes(t))).toBe(true);
    }
    // lm_head.weight is tied: it points at wte's storage.
    const wte = fromBin.find((t) => t.name === 'transformer.wte.weight')!;
    const head = fromBin.find((t) => t.name === 'lm_head.weight')!;
    expect(head.offset).toBe(wte.offset);
  });

  it.each([
    ['evil-os-system.bin', 'forbidden-global', /os\.system/],
    ['unknown-opcode.bin', 'unknown-opcode', /0xfe/],
    ['forbidden-newobj.bin', 'unknown-opcode', /NEWOBJ/],
  ])('refuses %s with a typed error naming what it refused', async (file, reason, message) => {
    const err = await readTorchBin(bin(file)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafePickleError);
    expect(err).toMatchObject({ reason, code: 'bad-input' });
    expect((err as Error).message).toMatch(message);
  });

  it('refuses every global outside the allow-list, also via STACK_GLOBAL', () => {
    const enc = new TextEncoder();
    const global = (m: string, n: string) =>
      new Uint8Array([0x80, 2, 0x63, ...enc.encode(`${m}\n${n}\n`), 0x29, 0x52, 0x2e]);
    for (const [m, n] of [
      ['builtins', 'eval'],
      ['subprocess', 'Popen'],
      ['torch', 'load'],
      ['collections', 'defaultdict'],
      ['torch._utils', '_rebuild_tensor'],
    ]) {
      expect(() => restrictedUnpickle(global(m, n), 'x.pkl')).toThrow(new RegExp(`${m}\\.${n}`));
    }
    // SHORT_BINUNICODE 'posix', SHORT_BINUNICODE 'system', STACK_GLOBAL
    const sg = new Uint8Array([
      0x80,
      4,
      0x8c,
      5,
      ...enc.encode('posix'),
      0x8c,
      6,
      ...enc.encode('system'),
      0x93,
      0x2e,
    ]);
    expect(() => restrictedUnpickle(sg, 'x.pkl')).toThrow(/posix\.system/);
  });

  it('rejects a tensor reading past the end of its storage, and a storage too short for its dtype', async () => {
    const f32 = (n: number) => new Uint8Array(Float32Array.from({ length: n }, (_, i) => i).buffer);
    const view = { name: 'a', shape: [2, 3], storage: '0', storageNumel: 8 };
    // The writer's output reads back (a view at offset 2), so each damaged copy differs in one field.
    const [t] = await readTorchBin(
      new MemoryByteSource(torchZip([{ ...view, storageOffset: 2 }], { 0: f32(8) }), 'ok.bin'),
    );
    expect(Array.from(toF32(t.dtype, await readTensorBytes(t), 2, 3))).toEqual([2, 3, 4, 5, 6, 7]);
    const past = await readTorchBin(
      new MemoryByteSource(torchZip([{ ...view, storageOffset: 3 }], { 0: f32(8) }), 'past.bin'),
    ).catch((e: unknown) => e);
    expect(past).toMatchObject({ reason: 'offset-out-of-range' });
    expect((past as Error).message).toMatch(/"a" reads past the end of its storage data\/0/);
    const short = await readTorchBin(
      new MemoryByteSource(torchZip([view], { 0: f32(7) }), 'short.bin'),
    ).catch((e: unknown) => e);
    expect(short).toMatchObject({ reason: 'dtype-mismatch' });
    expect((short as Error).message).toMatch(/28 bytes but 8 F32 values need 32/);
  });

  it('rejects truncated pickles and archives', async () => {
    expect(() => restrictedUnpickle(new Uint8Array([0x80, 2, 0x58, 10, 0, 0, 0, 0x61]), 'x.pkl')).toThrow(
      /ends unexpectedly/,
    );
    const full = readBytes(join(FIXTURES, 'demo/pytorch_model.bin'));
    await expect(
      readTorchBin(new MemoryByteSource(full.slice(0, full.length - 100), 'cut.bin')),
    ).rejects.toMatchObject({
      reason: 'bad-zip',
    });
    const zip = zipSync({ 'archive/version': new TextEncoder().encode('3') }, { level: 0 });
    await expect(readTorchBin(new MemoryByteSource(zip, 'nopkl.bin'))).rejects.toThrow(/no data\.pkl/);
    await expect(
      readTorchBin(new MemoryByteSource(new Uint8Array([0x80, 2, 0x8a, 10]), 'legacy.bin')),
    ).rejects.toThrow(/legacy/);
  });

  it('reads a deflated data.pkl (zip written by another tool) via fflate', async () => {
    const original = readBytes(join(FIXTURES, 'dtypes.bin'));
    const { unzipSync } = await import('fflate');
    const entries = unzipSync(original);
    const rezipped = zipSync(
      Object.fromEntries(
        Object.entries(entries).map(([k, v]) => [k, [v, { level: k.endsWith('data.pkl') ? 9 : 0 }]]),
      ) as Parameters<typeof zipSync>[0],
    );
    const t = await readTorchBin(new MemoryByteSource(rezipped, 'rezipped.bin'));
    expect(t.map((x) => x.name)).toEqual(['half', 'bf16', 'view', 'scalarish']);
    const half = t[0];
    expect(toF32(half.dtype, await readTensorBytes(half), 2, 3)[0]).toBeCloseTo(-0.5966796875, 6);
  });
});
