/**
 * Just enough of the ZIP format to stream a `torch.save` archive through a ByteSource: the central
 * directory (with ZIP64), local headers resolved on demand, stored entries read in place and
 * deflated ones inflated with fflate. Only the directory and the entries asked for are read.
 */
import { inflateSync } from 'fflate';
import { ModelFormatError } from './errors.ts';
import type { ByteSource } from './source.ts';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

export class ZipReader {
  private constructor(
    readonly source: ByteSource,
    readonly entries: Map<string, ZipEntry>,
  ) {}

  static async open(source: ByteSource): Promise<ZipReader> {
    const file = source.name;
    const bad = (msg: string): never => {
      throw new ModelFormatError('bad-zip', file, msg);
    };
    const tailLen = Math.min(source.size, 65535 + 22 + 20);
    if (source.size < 22) bad('is too short to be a zip archive (truncated?).');
    const tailStart = source.size - tailLen;
    const tail = await source.read(tailStart, tailLen);
    const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === 0x06054b50) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) bad('has no zip end-of-central-directory record; it is truncated or not a zip archive.');
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || tv.getUint32(loc, true) !== 0x07064b50) bad('ZIP64 locator missing.');
      const z64Offset = Number(tv.getBigUint64(loc + 8, true));
      if (z64Offset + 56 > source.size) bad('ZIP64 record outside the file (truncated?).');
      const z = await source.read(z64Offset, 56);
      const zv = new DataView(z.buffer, z.byteOffset, 56);
      if (zv.getUint32(0, true) !== 0x06064b50) bad('ZIP64 end record missing.');
      count = Number(zv.getBigUint64(32, true));
      cdSize = Number(zv.getBigUint64(40, true));
      cdOffset = Number(zv.getBigUint64(48, true));
    }
    if (cdOffset + cdSize > source.size)
      bad('central directory lies beyond the end of the file (truncated?).');
    const cd = await source.read(cdOffset, cdSize);
    const cv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
    const entries = new Map<string, ZipEntry>();
    const dec = new TextDecoder();
    let p = 0;
    for (let n = 0; n < count; n++) {
      if (p + 46 > cdSize || cv.getUint32(p, true) !== 0x02014b50) bad('central directory is corrupt.');
      const method = cv.getUint16(p + 10, true);
      let compressedSize = cv.getUint32(p + 20, true);
      let size = cv.getUint32(p + 24, true);
      const nameLen = cv.getUint16(p + 28, true);
      const extraLen = cv.getUint16(p + 30, true);
      const commentLen = cv.getUint16(p + 32, true);
      let localHeaderOffset = cv.getUint32(p + 42, true);
      const name = dec.decode(cd.subarray(p + 46, p + 46 + nameLen));
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = cv.getUint16(e, true);
        const len = cv.getUint16(e + 2, true);
        if (id === 0x0001) {
          let q = e + 4;
          if (size === 0xffffffff) {
            size = Number(cv.getBigUint64(q, true));
            q += 8;
          }
          if (compressedSize === 0xffffffff) {
            compressedSize = Number(cv.getBigUint64(q, true));
            q += 8;
          }
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = Number(cv.getBigUint64(q, true));
        }
        e += 4 + len;
      }
      if (entries.has(name)) bad(`entry ${name} appears twice.`);
      entries.set(name, { name, method, compressedSize, size, localHeaderOffset });
      p = extraEnd + commentLen;
    }
    return new ZipReader(source, entries);
  }

  /** Absolute offset of a stored entry's data (reads its local header). */
  async dataOffset(entry: ZipEntry): Promise<number> {
    const h = await this.source.read(entry.localHeaderOffset, 30);
    const hv = new DataView(h.buffer, h.byteOffset, 30);
    if (hv.getUint32(0, true) !== 0x04034b50) {
      throw new ModelFormatError('bad-zip', this.source.name, `local header of ${entry.name} is corrupt.`);
    }
    const start = entry.localHeaderOffset + 30 + hv.getUint16(26, true) + hv.getUint16(28, true);
    if (start + entry.compressedSize > this.source.size) {
      throw new ModelFormatError(
        'truncated',
        this.source.name,
        `entry ${entry.name} extends past the end of the file; the download is incomplete.`,
      );
    }
    return start;
  }

  /** The whole (decompressed) content of an entry; for small entries such as data.pkl. */
  async readEntry(entry: ZipEntry): Promise<Uint8Array> {
    const start = await this.dataOffset(entry);
    const raw = await this.source.read(start, entry.compressedSize);
    if (entry.method === 0) return raw;
    if (entry.method === 8) {
      try {
        return inflateSync(raw, { out: new Uint8Array(entry.size) });
      } catch (cause) {
        throw new ModelFormatError(
          'bad-zip',
          this.source.name,
          `entry ${entry.name} does not inflate (${String(cause)}).`,
        );
      }
    }
    throw new ModelFormatError(
      'bad-zip',
      this.source.name,
      `entry ${entry.name} uses zip method ${entry.method}.`,
    );
  }
}
