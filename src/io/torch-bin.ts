/**
 * PyTorch `pytorch_model.bin` (the zip format of torch ≥ 1.6): `<archive>/data.pkl` is unpickled by
 * the restricted unpickler, and every tensor points into a stored `<archive>/data/<key>` entry, which
 * is read in place with range reads, one tensor at a time.
 */
import { ModelFormatError, UnsupportedModelError } from './errors.ts';
import { restrictedUnpickle, type TensorRef } from './pickle.ts';
import type { ByteSource } from './source.ts';
import { numel, type TensorEntry } from './tensors.ts';
import { ZipReader } from './zip.ts';

const ELEM: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

export async function readTorchBin(source: ByteSource): Promise<TensorEntry[]> {
  const file = source.name;
  if (source.size >= 2) {
    const magic = await source.read(0, Math.min(source.size, 4));
    if (!(magic[0] === 0x50 && magic[1] === 0x4b)) {
      // The pre-1.6 format starts with a pickled magic number (0x80 0x02 0x8a 0x0a ...).
      if (magic[0] === 0x80) {
        throw new UnsupportedModelError(
          'unsupported-dtype',
          `${file} uses the legacy (pre-1.6) PyTorch format.`,
          'Re-save it with a current torch.save, or use the safetensors version of the model.',
        );
      }
      throw new ModelFormatError('bad-zip', file, 'is not a PyTorch zip checkpoint.');
    }
  }
  const zip = await ZipReader.open(source);
  const pklName = [...zip.entries.keys()].find((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
  if (!pklName)
    throw new ModelFormatError('bad-zip', file, 'has no data.pkl; it is not a torch.save archive.');
  const prefix = pklName.slice(0, pklName.length - 'data.pkl'.length);
  const root = restrictedUnpickle(await zip.readEntry(zip.entries.get(pklName)!), file);
  if (!(root instanceof Map)) {
    throw new ModelFormatError(
      'bad-pickle',
      file,
      'does not hold a state dict (a dict of tensors) at the top level.',
    );
  }
  const storages = new Map<string, { offset: number; size: number }>();
  const out: TensorEntry[] = [];
  for (const [key, value] of root) {
    if (typeof key !== 'string')
      throw new ModelFormatError('bad-pickle', file, 'state dict has a non-string key.');
    const t = value as TensorRef;
    if (typeof t !== 'object' || t === null || (t as { type?: unknown }).type !== 'tensor') {
      throw new ModelFormatError('bad-pickle', file, `state dict entry "${key}" is not a tensor.`);
    }
    const elem = ELEM[t.storage.dtype];
    // Only contiguous row-major tensors (what state_dict() holds); strides of size-1 dims are free.
    let expect = 1;
    for (let d = t.shape.length - 1; d >= 0; d--) {
      if (t.shape[d] !== 1 && t.stride[d] !== expect) {
        throw new UnsupportedModelError(
          'unsupported-dtype',
          `${file}: tensor "${key}" is not contiguous (stride ${t.stride.join(', ')}).`,
          'Re-save the state dict with contiguous tensors (tensor.contiguous()).',
        );
      }
      expect *= t.shape[d];
    }
    let st = storages.get(t.storage.key);
    if (!st) {
      const entry = zip.entries.get(`${prefix}data/${t.storage.key}`);
      if (!entry) {
        throw new ModelFormatError(
          'missing-tensor',
          file,
          `storage data/${t.storage.key} of "${key}" is missing.`,
        );
      }
      if (entry.method !== 0) {
        throw new ModelFormatError(
          'bad-zip',
          file,
          `storage data/${t.storage.key} is compressed; torch stores it raw.`,
        );
      }
      if (entry.size !== t.storage.numel * elem) {
        throw new ModelFormatError(
          'dtype-mismatch',
          file,
          `storage data/${t.storage.key} is ${entry.size} bytes but ${t.storage.numel} ${t.storage.dtype} values need ${t.storage.numel * elem}.`,
        );
      }
      st = { offset: await zip.dataOffset(entry), size: entry.size };
      storages.set(t.storage.key, st);
    }
    const byteLength = numel(t.shape) * elem;
    const start = t.storageOffset * elem;
    if (start + byteLength > st.size) {
      throw new ModelFormatError(
        'offset-out-of-range',
        file,
        `tensor "${key}" reads past the end of its storage data/${t.storage.key}.`,
      );
    }
    out.push({
      name: key,
      shape: t.shape,
      dtype: t.storage.dtype,
      source,
      offset: st.offset + start,
      byteLength,
    });
  }
  return out;
}
