/**
 * Where a model's files come from. A `ModelFiles` lists what a model folder or repository holds and
 * opens any file as a ByteSource; the loader decides what to read from the listing (never assuming a
 * layout). Implementations: the Hub (./hub.ts), a static folder served over HTTP (the embedded demo
 * model), a set of Blobs/Files (a dropped folder), a Node directory (./node-files.ts).
 */
import { ModelFormatError } from './errors.ts';
import {
  BlobByteSource,
  HttpByteSource,
  MemoryByteSource,
  type ByteSource,
  type HttpSourceOptions,
} from './source.ts';

export interface ModelFileInfo {
  /** Path inside the model folder, `/`-separated. */
  path: string;
  size: number;
  /** Content hash when known (Hub: LFS sha256 or git oid); part of cache keys. */
  hash?: string;
}

export interface ModelFiles {
  /** Shown in messages (repo id, folder name). */
  readonly label: string;
  /** Commit or other immutable revision id, when known. */
  readonly revision?: string;
  list(): Promise<ModelFileInfo[]>;
  open(path: string): Promise<ByteSource>;
}

function notFound(label: string, path: string): ModelFormatError {
  return new ModelFormatError(
    'no-weights',
    label,
    `has no file ${path}.`,
    'The model folder must contain config.json, tokenizer.json and the weights (safetensors, pytorch_model.bin or GGUF).',
  );
}

/** Files held as Blobs (browser File objects from a dropped folder, or Node Blobs). */
export class BlobModelFiles implements ModelFiles {
  constructor(
    private readonly files: ReadonlyMap<string, Blob>,
    readonly label = 'local folder',
  ) {}

  /** From a FileList/array of Files with `webkitRelativePath`; the common top folder is stripped. */
  static fromFiles(
    files: Iterable<Blob & { name: string; webkitRelativePath?: string }>,
    label?: string,
  ): BlobModelFiles {
    const map = new Map<string, Blob>();
    for (const f of files) {
      const rel = f.webkitRelativePath || f.name;
      const parts = rel.split('/');
      map.set(parts.length > 1 ? parts.slice(1).join('/') : rel, f);
    }
    return new BlobModelFiles(map, label);
  }

  async list(): Promise<ModelFileInfo[]> {
    return [...this.files].map(([path, blob]) => ({ path, size: blob.size }));
  }

  async open(path: string): Promise<ByteSource> {
    const blob = this.files.get(path);
    if (!blob) throw notFound(this.label, path);
    return new BlobByteSource(blob, path);
  }
}

/** Files in memory (tests, generated checkpoints). */
export class MemoryModelFiles implements ModelFiles {
  constructor(
    private readonly files: ReadonlyMap<string, Uint8Array>,
    readonly label = 'memory',
  ) {}
  async list(): Promise<ModelFileInfo[]> {
    return [...this.files].map(([path, b]) => ({ path, size: b.byteLength }));
  }
  async open(path: string): Promise<ByteSource> {
    const b = this.files.get(path);
    if (!b) throw notFound(this.label, path);
    return new MemoryByteSource(b, path);
  }
}

/**
 * A folder served by a static HTTP server that honours Range (the embedded demo model under
 * `public/models/demo/`). Static servers cannot list, so the file names are given.
 */
export class StaticHttpModelFiles implements ModelFiles {
  constructor(
    private readonly baseUrl: string,
    private readonly paths: readonly string[],
    readonly label = baseUrl,
    private readonly options: HttpSourceOptions = {},
  ) {}
  async list(): Promise<ModelFileInfo[]> {
    const out: ModelFileInfo[] = [];
    for (const path of this.paths) out.push({ path, size: (await this.open(path)).size });
    return out;
  }
  async open(path: string): Promise<ByteSource> {
    const url = new URL(path, this.baseUrl.endsWith('/') ? this.baseUrl : `${this.baseUrl}/`).toString();
    const src = await HttpByteSource.open(url, { ...this.options, displayName: path });
    return src;
  }
}
