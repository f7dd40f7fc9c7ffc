/** Node-only byte source over a file handle (never imported by browser code). */
import { open, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { checkRange, type ByteSource } from './source.ts';

export class NodeFileByteSource implements ByteSource {
  private constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    readonly name: string,
  ) {}

  static async open(path: string): Promise<NodeFileByteSource> {
    const handle = await open(path, 'r');
    const { size } = await handle.stat();
    return new NodeFileByteSource(handle, size, basename(path));
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    const out = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.handle.read(out, got, length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got !== length) checkRange({ size: offset + got, name: this.name }, offset, length);
    return out;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
