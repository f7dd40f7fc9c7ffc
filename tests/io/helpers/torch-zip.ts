/**
 * A minimal `torch.save`-shaped state dict: a protocol-2 data.pkl with the opcodes and globals torch
 * emits (OrderedDict of `_rebuild_tensor_v2` over persistent FloatStorage ids) and the storages as
 * stored zip entries. For damaged checkpoints torch itself would never write (a view past its
 * storage, a storage too short for its dtype); real torch output is in tests/fixtures/io.
 */
import { zipSync } from 'fflate';

export interface PickledTensor {
  name: string;
  shape: number[];
  /** Storage key (the zip entry archive/data/<key>). */
  storage: string;
  /** Elements the persistent id declares for the storage. */
  storageNumel: number;
  /** In elements. */
  storageOffset?: number;
}

export function torchZip(tensors: PickledTensor[], storages: Record<string, Uint8Array>): Uint8Array {
  const enc = new TextEncoder();
  const out: number[] = [];
  const op = (...bytes: number[]) => out.push(...bytes);
  const u32 = (v: number) => [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255];
  const str = (s: string) => {
    const b = enc.encode(s);
    op(0x58, ...u32(b.length), ...b); // BINUNICODE
  };
  const int = (v: number) => op(0x4a, ...u32(v)); // BININT
  const global = (module: string, name: string) => op(0x63, ...enc.encode(`${module}\n${name}\n`));
  const tuple = (items: () => void) => {
    op(0x28); // MARK
    items();
    op(0x74); // TUPLE
  };
  const orderedDict = () => {
    global('collections', 'OrderedDict');
    op(0x29, 0x52); // EMPTY_TUPLE, REDUCE
  };

  op(0x80, 2); // PROTO 2
  orderedDict();
  op(0x28); // MARK: the items
  for (const t of tensors) {
    str(t.name);
    global('torch._utils', '_rebuild_tensor_v2');
    tuple(() => {
      tuple(() => {
        str('storage');
        global('torch', 'FloatStorage');
        str(t.storage);
        str('cpu');
        int(t.storageNumel);
      });
      op(0x51); // BINPERSID
      int(t.storageOffset ?? 0);
      tuple(() => t.shape.forEach(int));
      const stride = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
      tuple(() => stride.forEach(int));
      op(0x89); // NEWFALSE: requires_grad
      orderedDict(); // backward hooks
    });
    op(0x52); // REDUCE
  }
  op(0x75, 0x2e); // SETITEMS, STOP

  const entries: Record<string, Uint8Array> = {
    'archive/data.pkl': Uint8Array.from(out),
    'archive/version': enc.encode('3\n'),
  };
  for (const [key, bytes] of Object.entries(storages)) entries[`archive/data/${key}`] = bytes;
  return zipSync(entries, { level: 0 });
}
