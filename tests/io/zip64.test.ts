/**
 * ZIP64 archives (every pytorch_model.bin over 4 GiB, e.g. WizardCoder-15B): the reader must take
 * sizes and offsets from the ZIP64 extra fields and the ZIP64 end record. Built by hand here, since a
 * real one would be gigabytes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { toF32 } from '../../src/io/convert.ts';
import { MemoryByteSource } from '../../src/io/source.ts';
import { readTensorBytes, rowsCols } from '../../src/io/tensors.ts';
import { readTorchBin } from '../../src/io/torch-bin.ts';
import { ZipReader } from '../../src/io/zip.ts';
import { FIXTURES, readBytes } from './helpers/fixtures.ts';

/** A stored-only archive where every size and offset is in ZIP64 fields. */
function zip64(entries: Record<string, Uint8Array>): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  let offset = 0;
  const central: Uint8Array[] = [];
  const emit = (b: Uint8Array) => {
    parts.push(b);
    offset += b.length;
  };
  for (const [name, data] of Object.entries(entries)) {
    const n = enc.encode(name);
    const local = new Uint8Array(30 + n.length + 20);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 45, true);
    lv.setUint32(18, 0xffffffff, true);
    lv.setUint32(22, 0xffffffff, true);
    lv.setUint16(26, n.length, true);
    lv.setUint16(28, 20, true);
    local.set(n, 30);
    lv.setUint16(30 + n.length, 1, true);
    lv.setUint16(32 + n.length, 16, true);
    lv.setBigUint64(34 + n.length, BigInt(data.length), true);
    lv.setBigUint64(42 + n.length, BigInt(data.length), true);
    const localOffset = offset;
    emit(local);
    emit(data);
    const c = new Uint8Array(46 + n.length + 28);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 45, true);
    cv.setUint16(6, 45, true);
    cv.setUint32(20, 0xffffffff, true);
    cv.setUint32(24, 0xffffffff, true);
    cv.setUint16(28, n.length, true);
    cv.setUint16(30, 28, true);
    cv.setUint32(42, 0xffffffff, true);
    c.set(n, 46);
    const e = 46 + n.length;
    cv.setUint16(e, 1, true);
    cv.setUint16(e + 2, 24, true);
    cv.setBigUint64(e + 4, BigInt(data.length), true);
    cv.setBigUint64(e + 12, BigInt(data.length), true);
    cv.setBigUint64(e + 20, BigInt(localOffset), true);
    central.push(c);
  }
  const cdOffset = offset;
  for (const c of central) emit(c);
  const cdSize = offset - cdOffset;
  const count = central.length;
  const z64Offset = offset;
  const z = new Uint8Array(56);
  const zv = new DataView(z.buffer);
  zv.setUint32(0, 0x06064b50, true);
  zv.setBigUint64(4, 44n, true);
  zv.setUint16(12, 45, true);
  zv.setUint16(14, 45, true);
  zv.setBigUint64(24, BigInt(count), true);
  zv.setBigUint64(32, BigInt(count), true);
  zv.setBigUint64(40, BigInt(cdSize), true);
  zv.setBigUint64(48, BigInt(cdOffset), true);
  emit(z);
  const loc = new Uint8Array(20);
  const locv = new DataView(loc.buffer);
  locv.setUint32(0, 0x07064b50, true);
  locv.setBigUint64(8, BigInt(z64Offset), true);
  locv.setUint32(16, 1, true);
  emit(loc);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, 0xffff, true);
  ev.setUint16(10, 0xffff, true);
  ev.setUint32(12, 0xffffffff, true);
  ev.setUint32(16, 0xffffffff, true);
  emit(end);
  const out = new Uint8Array(offset);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe('ZIP64', () => {
  it('reads a torch checkpoint whose sizes and offsets are all ZIP64', async () => {
    const entries = unzipSync(readBytes(join(FIXTURES, 'dtypes.bin')));
    const archive = zip64(entries);
    const zip = await ZipReader.open(new MemoryByteSource(archive, 'z64.bin'));
    expect([...zip.entries.keys()].sort()).toEqual(Object.keys(entries).sort());
    const expected = JSON.parse(readFileSync(join(FIXTURES, 'dtypes.json'), 'utf8')) as Record<
      string,
      { values: number[] }
    >;
    const tensors = await readTorchBin(new MemoryByteSource(archive, 'z64.bin'));
    for (const t of tensors) {
      expect(Array.from(toF32(t.dtype, await readTensorBytes(t), ...rowsCols(t.shape)))).toEqual(
        expected[t.name].values,
      );
    }
  });

  it('rejects a ZIP64 end record pointing outside the file', async () => {
    const archive = zip64({ 'a/data.pkl': new Uint8Array([0x80, 2, 0x7d, 0x2e]) });
    const v = new DataView(archive.buffer);
    // The locator sits 20 bytes before the 22-byte end record.
    v.setBigUint64(archive.length - 42 + 8, BigInt(archive.length + 100), true);
    await expect(ZipReader.open(new MemoryByteSource(archive, 'bad.bin'))).rejects.toMatchObject({
      reason: 'bad-zip',
    });
  });
});
