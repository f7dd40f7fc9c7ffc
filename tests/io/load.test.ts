/**
 * End to end: the demo model served by a local Hub stand-in (HTTP Range) in three formats, loaded
 * through the one `loadModel` API into a recording sink, in every weight format.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeWeight, f16ArrayToF32, f32ArrayToF16, type WeightFormat } from '../../src/engine/quant.ts';
import type { ModelFiles } from '../../src/io/files.ts';
import { BlobModelFiles, MemoryModelFiles, StaticHttpModelFiles } from '../../src/io/files.ts';
import { HubModelFiles } from '../../src/io/hub.ts';
import { inspectModel, loadModel, type CheckpointFormat, type LoadOptions } from '../../src/io/load.ts';
import { NodeDirModelFiles } from '../../src/io/node-files.ts';
import type { LoadProgress } from '../../src/io/progress.ts';
import { readSafetensorsHeader, writeSafetensors } from '../../src/io/safetensors.ts';
import { MemoryByteSource, type ByteSource } from '../../src/io/source.ts';
import { rowsCols } from '../../src/io/tensors.ts';
import { DEMO_DIR, demoFiles, readBytes, sameBytes } from './helpers/fixtures.ts';
import { FakeHub } from './helpers/hub-server.ts';
import { torchZip } from './helpers/torch-zip.ts';

interface Received {
  shape: number[];
  format: WeightFormat;
  bytes: Uint8Array;
}

function recorder() {
  const got = new Map<string, Received>();
  let inFlight = 0;
  let maxInFlight = 0;
  const sink: LoadOptions['sink'] = async (name, shape, format, bytes) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((r) => setTimeout(r, 0));
    got.set(name, { shape, format, bytes: bytes.slice() });
    inFlight--;
  };
  return { got, sink, maxInFlight: () => maxInFlight };
}

const hub = new FakeHub();
let reference: Map<string, Float32Array>;

beforeAll(async () => {
  await hub.start();
  hub.repos.set('demo/st', { files: demoFiles('safetensors') });
  hub.repos.set('demo/bin', { files: demoFiles('bin') });
  hub.repos.set('demo/gguf', { files: demoFiles('gguf') });
  hub.repos.set('demo/all', { files: demoFiles('all') });
  hub.repos.set('demo/gated', { files: demoFiles('safetensors'), token: 'hf_secret' });
  const st = await readSafetensorsHeader(
    new MemoryByteSource(readBytes(join(DEMO_DIR, 'model.safetensors'))),
  );
  reference = new Map();
  for (const t of st.tensors) {
    reference.set(t.name, new Float32Array((await t.source.read(t.offset, t.byteLength)).buffer));
  }
});
afterAll(() => hub.stop());

/** Shapes of the demo model's tensors. */
const shapeOf = (name: string): number[] => {
  const n = reference.get(name)!.length;
  if (name.endsWith('wte.weight')) return [4096, 64];
  if (name.endsWith('wpe.weight')) return [n / 64, 64];
  if (name.endsWith('c_attn.weight')) return [96, 64];
  if (name.endsWith('attn.c_proj.weight')) return [64, 64];
  if (name.endsWith('c_fc.weight')) return [256, 64];
  if (name.endsWith('mlp.c_proj.weight')) return [64, 256];
  return [n];
};

const hubFiles = (repo: string, token?: string) => new HubModelFiles(repo, { hubBaseUrl: hub.url, token });
const TOL: Record<WeightFormat, number> = { f32: 0, f16: 1e-3, q8_0: 1e-3, q4_0: 2.5e-2 };

describe('loadModel', () => {
  const loads = new Map<string, Map<string, Received>>();
  const formats: CheckpointFormat[] = ['safetensors', 'bin', 'gguf'];
  const weightFormats: WeightFormat[] = ['f32', 'f16', 'q8_0', 'q4_0'];

  for (const format of formats) {
    for (const wf of weightFormats) {
      it(`${format} → ${wf}: every tensor arrives once, in the policy's format, within tolerance`, async () => {
        const repo = format === 'safetensors' ? 'demo/st' : format === 'bin' ? 'demo/bin' : 'demo/gguf';
        const r = recorder();
        const model = await loadModel(hubFiles(repo), { weightFormat: wf, sink: r.sink });
        expect(model.format).toBe(format);
        expect(model.config).toMatchObject({ n_embd: 64, n_layer: 2, vocab_size: 4096 });
        expect(model.tokenizer?.padId).toBe(4095);
        expect(r.maxInFlight()).toBe(1);
        expect([...r.got.keys()].sort()).toEqual([...reference.keys()].sort());
        if (format === 'bin') expect(model.skipped).toEqual(['lm_head.weight']);
        for (const [name, ref] of reference) {
          const got = r.got.get(name)!;
          const linear = /\.(c_attn|c_proj|c_fc)\.weight$/.test(name);
          const emb = /\.(wte|wpe)\.weight$/.test(name);
          expect(got.format).toBe(linear ? wf : 'f32');
          const [rows, cols] = rowsCols(got.shape);
          const values = decodeWeight(got.format, rows, cols, got.bytes);
          let maxErr = 0;
          let refMax = 0;
          for (let i = 0; i < ref.length; i++) {
            maxErr = Math.max(maxErr, Math.abs(values[i] - ref[i]));
            refMax = Math.max(refMax, Math.abs(ref[i]));
          }
          // The GGUF holds Q8_0 linears and F16 embeddings: its f32 output is exact only up to those.
          const sourceTol = format === 'gguf' && (linear || emb) ? (linear ? 1e-3 : 1e-4) : 0;
          // Quantization error scales with the tensor's magnitude; the figures hold up to |w| = 0.1.
          const scale = Math.max(1, refMax / 0.1);
          expect(maxErr, name).toBeLessThanOrEqual((TOL[got.format] + sourceTol) * scale + 1e-7);
        }
        loads.set(`${format}/${wf}`, r.got);
      });
    }
  }

  it('safetensors and .bin give byte-identical tensors in every weight format; GGUF Q8_0 equals quantizing the f32 weights', () => {
    for (const wf of weightFormats) {
      const a = loads.get(`safetensors/${wf}`)!;
      const b = loads.get(`bin/${wf}`)!;
      for (const [name, t] of a) expect(sameBytes(t.bytes, b.get(name)!.bytes), `${wf} ${name}`).toBe(true);
    }
    // The GGUF stores embeddings as F16: all other tensors are byte-identical, embeddings are the
    // f16-rounded f32 values.
    const st = loads.get('safetensors/q8_0')!;
    const gg = loads.get('gguf/q8_0')!;
    for (const [name, t] of st) {
      const g = gg.get(name)!;
      if (!/\.(wte|wpe)\.weight$/.test(name)) expect(sameBytes(t.bytes, g.bytes), name).toBe(true);
      else {
        const [rows, cols] = rowsCols(t.shape);
        const halves = f32ArrayToF16(decodeWeight('f32', rows, cols, t.bytes));
        expect(sameBytes(new Uint8Array(f16ArrayToF32(halves).buffer), g.bytes), name).toBe(true);
      }
    }
  });

  it('loads a sharded safetensors checkpoint shard by shard, each read sequentially', async () => {
    const names = [...reference.keys()];
    const half = Math.ceil(names.length / 2);
    const shard = (ns: string[]) =>
      writeSafetensors(
        ns.map((name) => ({
          name,
          dtype: 'F32' as const,
          shape: shapeOf(name),
          data: new Uint8Array(reference.get(name)!.buffer.slice(0)),
        })),
      );
    const files = demoFiles('safetensors');
    files.delete('model.safetensors');
    files.set('model-00001-of-00002.safetensors', shard(names.slice(half)));
    files.set('model-00002-of-00002.safetensors', shard(names.slice(0, half)));
    const weightMap = Object.fromEntries(
      names.map((n, i) => [n, `model-0000${i < half ? 2 : 1}-of-00002.safetensors`]),
    );
    files.set(
      'model.safetensors.index.json',
      new TextEncoder().encode(JSON.stringify({ metadata: {}, weight_map: weightMap })),
    );
    const inner = new MemoryModelFiles(files, 'sharded');
    const reads: [string, number][] = [];
    const spy: ModelFiles = {
      label: 'sharded',
      list: () => inner.list(),
      open: async (p) => {
        const s = await inner.open(p);
        return {
          size: s.size,
          name: s.name,
          read: (o: number, l: number) => (reads.push([p, o]), s.read(o, l)),
        };
      },
    };
    const r = recorder();
    const m = await loadModel(spy, { weightFormat: 'q8_0', sink: r.sink });
    expect(m.files).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    const ref = loads.get('safetensors/q8_0')!;
    for (const [name, t] of ref) expect(sameBytes(r.got.get(name)!.bytes, t.bytes), name).toBe(true);
    // After the headers: all of shard 1, then all of shard 2, offsets increasing within each.
    const dataReads = reads.filter(([p, o]) => p.endsWith('.safetensors') && o > 8).slice(2);
    const firstOf2 = dataReads.findIndex(([p]) => p.startsWith('model-00002'));
    expect(dataReads.slice(firstOf2).every(([p]) => p.startsWith('model-00002'))).toBe(true);
    for (let i = 1; i < dataReads.length; i++) {
      if (dataReads[i][0] === dataReads[i - 1][0])
        expect(dataReads[i][1]).toBeGreaterThan(dataReads[i - 1][1]);
    }
  });

  it('picks the requested format from a folder holding all three, and safetensors by default', async () => {
    expect(
      (await loadModel(hubFiles('demo/all'), { weightFormat: 'f32', sink: async () => {} })).format,
    ).toBe('safetensors');
    const g = await loadModel(hubFiles('demo/all'), {
      weightFormat: 'f32',
      sink: async () => {},
      prefer: 'gguf',
    });
    expect(g.files).toEqual(['demo-q8_0.gguf']);
    await expect(
      loadModel(hubFiles('demo/st'), { weightFormat: 'f32', sink: async () => {}, prefer: 'gguf' }),
    ).rejects.toMatchObject({ reason: 'no-weights' });
  });

  it('inspectModel reads only headers and lists what a load would hand over', async () => {
    for (const format of formats) {
      let weightBytesRead = 0;
      const inner = new MemoryModelFiles(demoFiles('all'), 'demo');
      const counting: ModelFiles = {
        label: 'demo',
        list: () => inner.list(),
        open: async (path) => {
          const s = await inner.open(path);
          const weights = /\.(safetensors|bin|gguf)$/.test(path);
          return {
            size: s.size,
            name: s.name,
            read: async (o: number, l: number) => {
              if (weights) weightBytesRead += l;
              return s.read(o, l);
            },
          };
        },
      };
      const info = await inspectModel(counting, { weightFormat: 'q4_0', prefer: format });
      const loaded = await loadModel(inner, { weightFormat: 'q4_0', prefer: format, sink: async () => {} });
      expect(info.format).toBe(format);
      expect(info.config).toEqual(loaded.config);
      expect(info.tokenizer?.vocabSize).toBe(loaded.tokenizer?.vocabSize);
      const byName = (t: { name: string }[]) => [...t].sort((a, b) => (a.name < b.name ? -1 : 1));
      expect(byName(info.tensors)).toEqual(byName(loaded.tensors));
      expect(info.uploadedBytes).toBe(0);
      // Headers only: the .bin reads a 64 KiB tail for the zip directory and data.pkl; the GGUF
      // parser (@huggingface/gguf) reads in 2 MB chunks, the whole of this small file.
      const fileSize = (await inner.list()).find((f) => f.path === loaded.files[0])!.size;
      expect(weightBytesRead, format).toBeLessThan(format === 'gguf' ? 2e6 : fileSize / 10);
    }
  });

  it('reports byte progress per stage, monotonic, ending at 100% with an ETA on the way', async () => {
    const events: LoadProgress[] = [];
    const model = await loadModel(hubFiles('demo/st'), {
      weightFormat: 'q4_0',
      sink: async () => {},
      onProgress: (p) => events.push(p),
      chunkBytes: 8192,
    });
    const last = events.at(-1)!;
    expect(last.stage).toBe('done');
    expect(last.fraction).toBe(1);
    expect(last.downloadedBytes).toBe(last.totalBytes);
    expect(last.convertedBytes).toBe(last.totalBytes);
    expect(last.uploadedBytes).toBe(model.uploadedBytes);
    expect(last.tensorsDone).toBe(last.tensorsTotal);
    expect(last.totalBytes).toBe([...reference.values()].reduce((s, v) => s + v.byteLength, 0));
    for (let i = 1; i < events.length; i++) {
      expect(events[i].downloadedBytes).toBeGreaterThanOrEqual(events[i - 1].downloadedBytes);
      expect(events[i].uploadedBytes).toBeGreaterThanOrEqual(events[i - 1].uploadedBytes);
      expect(events[i].fraction).toBeGreaterThanOrEqual(events[i - 1].fraction);
    }
    expect(events.some((e) => e.stage === 'convert' && e.etaSeconds !== undefined)).toBe(true);
  });

  it('streams: with a small chunk no tensor read exceeds the chunk, so memory stays near one tensor', async () => {
    const files = new NodeDirModelFiles(DEMO_DIR);
    const reads: number[] = [];
    const spy: ModelFiles = {
      label: 'spy',
      list: () => files.list(),
      open: async (p) => {
        const s = await files.open(p);
        return {
          size: s.size,
          name: s.name,
          read: (o: number, l: number) => (
            p === 'model.safetensors' && o > 8192 && reads.push(l),
            s.read(o, l)
          ),
          close: () => s.close!(),
        } satisfies ByteSource;
      },
    };
    await loadModel(spy, { weightFormat: 'q4_0', sink: async () => {}, chunkBytes: 16384 });
    expect(reads.length).toBeGreaterThan(28);
    expect(Math.max(...reads)).toBeLessThanOrEqual(16384);
  });

  it('loads from a static Range-capable folder (the browser demo path), a dropped folder of Files, and a Node directory', async () => {
    const names = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];
    const sources: ModelFiles[] = [
      new StaticHttpModelFiles(`${hub.url}/demo/st/resolve/main/`, names),
      BlobModelFiles.fromFiles(
        names.map((n) =>
          Object.assign(new File([readBytes(join(DEMO_DIR, n)) as Uint8Array<ArrayBuffer>], n), {
            webkitRelativePath: `demo/${n}`,
          }),
        ),
      ),
      new NodeDirModelFiles(DEMO_DIR),
    ];
    const ref = loads.get('safetensors/q8_0')!;
    for (const files of sources) {
      const r = recorder();
      await loadModel(files, { weightFormat: 'q8_0', sink: r.sink });
      for (const [name, t] of ref) expect(sameBytes(r.got.get(name)!.bytes, t.bytes)).toBe(true);
    }
  });
});

describe('loadModel: bad input is refused before anything reaches the sink', () => {
  const withFiles = (edit: (files: Map<string, Uint8Array>) => void): ModelFiles => {
    const files = demoFiles('safetensors');
    edit(files);
    const name = `bad/${Math.random().toString(36).slice(2)}`;
    hub.repos.set(name, { files });
    return hubFiles(name);
  };
  const expectRefused = async (files: ModelFiles, reason: string, message?: RegExp) => {
    let calls = 0;
    const err = await loadModel(files, {
      weightFormat: 'q4_0',
      sink: async () => {
        calls++;
      },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason });
    if (message) expect((err as Error).message).toMatch(message);
    expect((err as { hint?: string }).hint).toBeTruthy();
    expect(calls).toBe(0);
  };

  /** Rewrites model.safetensors from the reference tensors after `edit`. */
  const rewrite = (
    files: Map<string, Uint8Array>,
    edit: (
      t: { name: string; shape: number[]; data: Uint8Array }[],
    ) => { name: string; shape: number[]; data: Uint8Array }[],
  ) => {
    const t = [...reference].map(([name, v]) => ({
      name,
      shape: shapeOf(name),
      data: new Uint8Array(v.buffer.slice(0)),
    }));
    files.set('model.safetensors', writeSafetensors(edit(t).map((x) => ({ ...x, dtype: 'F32' as const }))));
  };

  it('a config that does not parse', () =>
    expectRefused(
      withFiles((f) => f.set('config.json', new TextEncoder().encode('{ nope'))),
      'bad-config',
    ));

  it('dtype/shape disagreeing with config.json', () =>
    expectRefused(
      withFiles((f) => {
        const c = JSON.parse(new TextDecoder().decode(f.get('config.json')));
        f.set('config.json', new TextEncoder().encode(JSON.stringify({ ...c, n_inner: 128 })));
      }),
      'shape-mismatch',
      /c_fc\.weight.*\[256, 64\].*\[128, 64\]/,
    ));

  it('a missing tensor', () =>
    expectRefused(
      withFiles((f) => rewrite(f, (t) => t.filter((x) => x.name !== 'transformer.h.1.mlp.c_fc.bias'))),
      'missing-tensor',
      /h\.1\.mlp\.c_fc\.bias/,
    ));

  it('a tensor of another model', () =>
    expectRefused(
      withFiles((f) =>
        rewrite(f, (t) => [
          ...t,
          { name: 'transformer.h.2.ln_1.weight', shape: [64], data: new Uint8Array(256) },
        ]),
      ),
      'unexpected-tensor',
    ));

  it('the same tensor twice under two spellings (a .bin with and without the transformer. prefix)', () =>
    expectRefused(
      withFiles((f) => {
        // Every tensor with its own storage, plus wte again under its prefix-less .bin name.
        const entries = [...reference, ['wte.weight', reference.get('transformer.wte.weight')!] as const];
        const tensors = entries.map(([name, v], i) => ({
          name,
          shape: shapeOf(name.startsWith('transformer.') ? name : `transformer.${name}`),
          storage: `${i}`,
          storageNumel: v.length,
        }));
        const storages = Object.fromEntries(
          entries.map(([, v], i) => [`${i}`, new Uint8Array(v.slice().buffer)]),
        );
        f.delete('model.safetensors');
        f.set('pytorch_model.bin', torchZip(tensors, storages));
      }),
      'duplicate-tensor',
      /"transformer\.wte\.weight" appears twice/,
    ));

  it('GGUF metadata disagreeing with config.json', () =>
    expectRefused(
      withFiles((f) => {
        const c = JSON.parse(new TextDecoder().decode(f.get('config.json')));
        f.set('config.json', new TextEncoder().encode(JSON.stringify({ ...c, n_positions: 512 })));
        f.delete('model.safetensors');
        f.set('demo-q8_0.gguf', demoFiles('gguf').get('demo-q8_0.gguf')!);
      }),
      'shape-mismatch',
      /GGUF metadata disagrees with config\.json on n_positions \(1024 vs 512\)/,
    ));

  it('a truncated download (data section cut)', () =>
    expectRefused(
      withFiles((f) => f.set('model.safetensors', f.get('model.safetensors')!.slice(0, 300_000))),
      'offset-out-of-range',
    ));

  it('a tokenizer with more ids than the embedding table', () =>
    expectRefused(
      withFiles((f) => {
        const c = JSON.parse(new TextDecoder().decode(f.get('config.json')));
        f.set(
          'config.json',
          new TextEncoder().encode(JSON.stringify({ ...c, vocab_size: 2000, pad_token_id: null })),
        );
        rewrite(f, (t) =>
          t.map((x) =>
            x.name === 'transformer.wte.weight'
              ? { ...x, shape: [2000, 64], data: x.data.slice(0, 2000 * 64 * 4) }
              : x,
          ),
        );
      }),
      'vocab-too-large',
    ));

  it('a gated repository without a token, then with one', async () => {
    await expectRefused(hubFiles('demo/gated'), 'unauthorized');
    await expectRefused(hubFiles('demo/gated', 'hf_other'), 'gated');
    const m = await loadModel(hubFiles('demo/gated', 'hf_secret'), {
      weightFormat: 'f16',
      sink: async () => {},
    });
    expect(m.tensors).toHaveLength(reference.size);
  });

  it('a failure mid-stream calls abort so the sink can free what it holds', async () => {
    const inner = new NodeDirModelFiles(DEMO_DIR);
    let reads = 0;
    const failing: ModelFiles = {
      label: 'failing',
      list: () => inner.list(),
      open: async (p) => {
        const s = await inner.open(p);
        return {
          size: s.size,
          name: s.name,
          read: async (o: number, l: number) => {
            if (p === 'model.safetensors' && ++reads > 10) throw new Error('disk on fire');
            return s.read(o, l);
          },
          close: () => s.close!(),
        };
      },
    };
    const held = new Set<string>();
    let aborted: unknown;
    const err = await loadModel(failing, {
      weightFormat: 'f32',
      sink: async (name) => void held.add(name),
      abort: (e) => {
        aborted = e;
        held.clear();
      },
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('disk on fire');
    expect(aborted).toBe(err);
    expect(held.size).toBe(0);
  });
});
