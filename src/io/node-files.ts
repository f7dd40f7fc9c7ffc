/** Node-only: a model folder on disk as ModelFiles. */
import { readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { ModelFileInfo, ModelFiles } from './files.ts';
import { NodeFileByteSource } from './node-source.ts';
import type { ByteSource } from './source.ts';

export class NodeDirModelFiles implements ModelFiles {
  readonly label: string;
  constructor(private readonly dir: string) {
    this.label = dir;
  }
  async list(): Promise<ModelFileInfo[]> {
    const out: ModelFileInfo[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile())
          out.push({ path: relative(this.dir, p).split(sep).join('/'), size: (await stat(p)).size });
      }
    };
    await walk(this.dir);
    return out;
  }
  open(path: string): Promise<ByteSource> {
    return NodeFileByteSource.open(join(this.dir, ...path.split('/')));
  }
}
