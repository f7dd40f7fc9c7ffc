import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { f32ToF16 } from '../../src/engine/quant.ts';
import { toF32 } from '../../src/io/convert.ts';
import { ModelFormatError } from '../../src/io/errors.ts';
import {
  firstDuplicateTopLevelKey,
  parseSafetensorsIndex,
  readSafetensorsHeader,
  readShardedSafetensors,
  writeSafetensors,
} from '../../src/io/safetensors.ts';
import { MemoryByteSource } from '../../src/io/source.ts';
import { readTensorBytes, rowsCols } from '../../src/io/tensors.ts';

const f32 = (xs: number[]): Uint8Array => new Uint8Array(new Float32Array(xs).buffer);
const f16 = (xs: number[]): Uint8Array => new Uint8Array(new Uint16Array(xs.map(f32ToF16)).buffer);
const bf16 = (xs: number[]): Uint8Array =>
  new Uint8Array(
    new Uint16Array([...new Uint32Array(new Float32Array(xs).buffer)].map((u) => u >>> 16)).buffer,
  );

/** A safetensors file from a raw header object and data. */
function rawFile(header: object | string, data: Uint8Array, lengthOverride?: number): Uint8Array {
  const h = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(lengthOverride ?? h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

async function reject(bytes: Uint8Array): Promise<ModelFormatError> {
  const err = await readSafetensorsHeader(new MemoryByteSource(bytes, 't.safetensors')).catch(
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as ModelFormatError;
}

describe('safetensors', () => {
  it('writes and reads back F32, F16 and BF16 tensors', async () => {
    const file = writeSafetensors(
      [
        { name: 'a', dtype: 'F32', shape: [2, 3], data: f32([1, 2, 3, 4, 5, -6.5]) },
        { name: 'b', dtype: 'F16', shape: [3], data: f16([0.5, -1, 65504]) },
        { name: 'c', dtype: 'BF16', shape: [1, 2], data: bf16([3.140625, -2]) },
      ],
      { format: 'pt' },
    );
    expect((new DataView(file.buffer).getUint32(0, true) + 8) % 8).toBe(0);
    const { tensors, metadata } = await readSafetensorsHeader(new MemoryByteSource(file));
    expect(metadata).toEqual({ format: 'pt' });
    const values = await Promise.all(
      tensors.map(async (t) => [
        t.name,
        t.dtype,
        Array.from(toF32(t.dtype, await readTensorBytes(t), ...rowsCols(t.shape))),
      ]),
    );
    expect(values).toEqual([
      ['a', 'F32', [1, 2, 3, 4, 5, -6.5]],
      ['b', 'F16', [0.5, -1, 65504]],
      ['c', 'BF16', [3.140625, -2]],
    ]);
  });

  it('round-trips random tensors exactly (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 7 })), {
          minLength: 1,
          maxLength: 5,
        }),
        fc.integer(),
        async (shapes, seed) => {
          const entries = shapes.map(([r, c], i) => ({
            name: `t${i}`,
            dtype: 'F32' as const,
            shape: [r, c],
            data: f32(Array.from({ length: r * c }, (_, j) => Math.fround(Math.sin(seed + i * 100 + j)))),
          }));
          const { tensors } = await readSafetensorsHeader(new MemoryByteSource(writeSafetensors(entries)));
          for (const [i, t] of tensors.entries()) {
            expect(t.shape).toEqual(entries[i].shape);
            expect(await readTensorBytes(t)).toEqual(entries[i].data);
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  it('rejects a file too short for a header and a header length beyond the file', async () => {
    expect(await reject(new Uint8Array(5))).toMatchObject({ reason: 'truncated' });
    const good = rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32([1]));
    expect(
      await reject(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32([1]), 10_000)),
    ).toMatchObject({
      reason: 'header-out-of-range',
    });
    // A truncated download: header intact, data cut.
    expect(await reject(good.slice(0, good.length - 2))).toMatchObject({ reason: 'offset-out-of-range' });
  });

  it('rejects offsets outside the data and overlapping tensors', async () => {
    const data = f32([1, 2, 3, 4]);
    expect(
      await reject(rawFile({ a: { dtype: 'F32', shape: [4], data_offsets: [4, 20] } }, data)),
    ).toMatchObject({ reason: 'offset-out-of-range' });
    const overlap = await reject(
      rawFile(
        {
          a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
          b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
        },
        data,
      ),
    );
    expect(overlap).toMatchObject({ reason: 'overlapping-tensors' });
    expect(overlap.message).toMatch(/"a" and "b"/);
  });

  it('rejects dtype × shape disagreeing with the byte range, unknown and unsupported dtypes', async () => {
    const data = f32([1, 2, 3, 4]);
    expect(
      await reject(rawFile({ a: { dtype: 'F16', shape: [4], data_offsets: [0, 16] } }, data)),
    ).toMatchObject({
      reason: 'dtype-mismatch',
    });
    expect(
      await reject(rawFile({ a: { dtype: 'Q9', shape: [4], data_offsets: [0, 16] } }, data)),
    ).toMatchObject({
      reason: 'bad-header',
    });
    const i32 = await reject(rawFile({ a: { dtype: 'I32', shape: [4], data_offsets: [0, 16] } }, data));
    expect(i32).toMatchObject({ reason: 'unsupported-dtype', code: 'unsupported' });
    expect(i32.message).toMatch(/I32/);
  });

  it('rejects duplicate tensor names (which JSON.parse would silently merge) and bad JSON', async () => {
    const header =
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    const err = await reject(rawFile(header, f32([1, 2])));
    expect(err).toMatchObject({ reason: 'duplicate-tensor' });
    expect(err.message).toMatch(/"a"/);
    expect(await reject(rawFile('{"a": [', f32([1])))).toMatchObject({ reason: 'bad-header' });
    expect(firstDuplicateTopLevelKey('{"x":{"a":1,"a":2},"y":"a"}')).toBeUndefined();
    expect(firstDuplicateTopLevelKey('{"x\\"":1,"x\\"":2}')).toBe('x"');
  });

  describe('sharded', () => {
    const shard1 = writeSafetensors([{ name: 'a', dtype: 'F32', shape: [1], data: f32([1]) }]);
    const shard2 = writeSafetensors([
      { name: 'b', dtype: 'F32', shape: [1], data: f32([2]) },
      { name: 'c', dtype: 'F32', shape: [1], data: f32([3]) },
    ]);
    const open = (files: Record<string, Uint8Array>) => async (f: string) =>
      new MemoryByteSource(files[f], f);

    it('merges shards listed by the index', async () => {
      const index = parseSafetensorsIndex(
        JSON.stringify({
          metadata: {},
          weight_map: { a: 's1.safetensors', b: 's2.safetensors', c: 's2.safetensors' },
        }),
      );
      expect(index.shards).toEqual(['s1.safetensors', 's2.safetensors']);
      const t = await readShardedSafetensors(
        index,
        open({ 's1.safetensors': shard1, 's2.safetensors': shard2 }),
      );
      expect(t.map((x) => `${x.name}@${x.source.name}`)).toEqual([
        'a@s1.safetensors',
        'b@s2.safetensors',
        'c@s2.safetensors',
      ]);
    });

    it('rejects a tensor in two shards, a tensor the index misplaces, and an index entry with no tensor', async () => {
      const dupShard = writeSafetensors([{ name: 'a', dtype: 'F32', shape: [1], data: f32([9]) }]);
      const idx = parseSafetensorsIndex(JSON.stringify({ weight_map: { a: 's1', b: 's2' } }));
      await expect(
        readShardedSafetensors(
          idx,
          open({
            s1: shard1,
            s2: writeSafetensors([
              { name: 'b', dtype: 'F32', shape: [1], data: f32([2]) },
              { name: 'a', dtype: 'F32', shape: [1], data: f32([1]) },
            ]),
          }),
        ),
      ).rejects.toMatchObject({ reason: 'duplicate-tensor' });
      await expect(readShardedSafetensors(idx, open({ s1: dupShard, s2: shard2 }))).rejects.toMatchObject({
        reason: 'bad-header',
      });
      const missing = parseSafetensorsIndex(JSON.stringify({ weight_map: { a: 's1', z: 's1' } }));
      await expect(readShardedSafetensors(missing, open({ s1: shard1 }))).rejects.toMatchObject({
        reason: 'missing-tensor',
      });
      expect(() => parseSafetensorsIndex('{"weight_map": {"a": "s1", "a": "s2"}}')).toThrow(/listed twice/);
      expect(() => parseSafetensorsIndex('{"weight_map": {"a": "../etc/passwd"}}')).toThrow(ModelFormatError);
    });
  });
});
