/**
 * Issue 4's acceptance check on the real adapter: the demo model loaded straight onto the GPU through
 * `loadModelToGpu` from safetensors, .bin and GGUF in every weight format gives the logits of the f32
 * safetensors load (identical for f32 from safetensors and .bin, within each format's tolerance
 * otherwise), and each load's logits are the float64 CPU forward of the very weights it loaded. The
 * streaming upload holds one tensor at a time, and a failing load leaves nothing on the GPU.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu/index.ts';
import { baseParamSpecs } from '../../src/engine/model/decoder.ts';
import { DecoderGpu } from '../../src/engine/model/decoder-gpu.ts';
import { decodeWeight, encodeWeight, type WeightFormat } from '../../src/engine/quant.ts';
import { forwardRef, type ParamMap } from '../../src/engine/reference/model.ts';
import { MemoryModelFiles, type ModelFiles } from '../../src/io/files.ts';
import { loadModelToGpu } from '../../src/io/load-gpu.ts';
import { loadModel, type CheckpointFormat } from '../../src/io/load.ts';
import { writeRandomCheckpoint } from '../../src/io/node-scale-check.ts';
import { NodeDirModelFiles } from '../../src/io/node-files.ts';
import { findPreset } from '../../src/io/presets.ts';
import { rowsCols } from '../../src/io/tensors.ts';
import { initialTrainables } from '../../src/train/init.ts';
import { useGpu } from '../helpers/gpu.ts';
import { demoFiles } from '../io/helpers/fixtures.ts';
import { batchOf, LORA, loadAndForward, logitTolerance } from '../io/helpers/gpu-forward.ts';
import { relativeError } from '../helpers/relative-error.ts';

const gpu = useGpu();
const demo = (): ModelFiles => new MemoryModelFiles(demoFiles('all'), 'demo');

const CHECKPOINTS: CheckpointFormat[] = ['safetensors', 'bin', 'gguf'];
const WEIGHT_FORMATS: WeightFormat[] = ['f32', 'f16', 'q8_0', 'q4_0'];

// The GPU forward of a load vs the float64 CPU forward of the same (dequantized) weights: f32
// rounding over 2 blocks, as in tests/gpu/model.test.ts.
const FORWARD_TOL = 1e-5;

/** The weights a load hands over, dequantized to float64 (the CPU reference's input). */
async function weightsOf(checkpoint: CheckpointFormat, weightFormat: WeightFormat): Promise<ParamMap> {
  const params: ParamMap = new Map();
  await loadModel(demo(), {
    weightFormat,
    prefer: checkpoint,
    skipTokenizer: true,
    sink: async (name, shape, format, bytes) => {
      params.set(name, Float64Array.from(decodeWeight(format, ...rowsCols(shape), bytes)));
    },
  });
  return params;
}

describe('loadModelToGpu: the demo model in every checkpoint and weight format', () => {
  it('gives the f32 logits (identical from safetensors and .bin) within each format’s tolerance', async () => {
    const ctx = gpu();
    const ref = await loadAndForward(ctx, demo(), 'safetensors', 'f32');
    expect(ref.ids.length).toBe(45);
    expect(ref.logits.length).toBe(45 * ref.config.vocab_size);
    let scale = 0;
    for (const v of ref.logits) scale = Math.max(scale, Math.abs(v));
    expect(scale).toBeGreaterThan(0.05);

    const errors: Record<string, number> = {};
    for (const checkpoint of CHECKPOINTS) {
      for (const wf of WEIGHT_FORMATS) {
        const key = `${checkpoint}/${wf}`;
        const r =
          checkpoint === 'safetensors' && wf === 'f32'
            ? ref
            : await loadAndForward(ctx, demo(), checkpoint, wf);
        expect(r.loaded.format, key).toBe(checkpoint);
        // The same model as the CPU float64 forward of the weights this load handed over.
        const cpu = forwardRef(
          { config: r.config, lora: null, mode: 'packed' },
          await weightsOf(checkpoint, wf),
          batchOf(r.ids),
          'ntp',
        ).logits;
        expect(relativeError(r.logits, cpu), `${key} vs CPU`).toBeLessThan(FORWARD_TOL);
        errors[key] = relativeError(r.logits, ref.logits);
        // Streaming: the upload held one tensor at a time (in its storage format, nothing converted).
        const largest = Math.max(...r.loaded.tensors.map((t) => t.bytes));
        expect(r.upload.peakHeldBytes, key).toBe(largest);
      }
    }
    console.log(
      'relative logit error vs f32 safetensors:',
      Object.entries(errors)
        .map(([k, e]) => `${k} ${e.toExponential(2)}`)
        .join(', '),
    );
    expect(errors['safetensors/f32']).toBe(0);
    expect(errors['bin/f32']).toBe(0);
    for (const [key, e] of Object.entries(errors)) {
      const [checkpoint, wf] = key.split('/') as [CheckpointFormat, WeightFormat];
      expect(e, key).toBeLessThanOrEqual(logitTolerance(checkpoint, wf));
    }
    expect(errors['safetensors/f16']).toBeLessThan(errors['safetensors/q8_0']);
    expect(errors['safetensors/q8_0']).toBeLessThan(errors['safetensors/q4_0']);
    // .bin holds the same values as safetensors: every weight format gives identical logits.
    for (const wf of WEIGHT_FORMATS) expect(errors[`bin/${wf}`]).toBe(errors[`safetensors/${wf}`]);
  });

  it('the classification head: score weights supplied at finish, cls logits equal the CPU forward', async () => {
    const ctx = gpu();
    const r = await loadAndForward(ctx, demo(), 'gguf', 'q4_0', 'cls');
    expect(r.logits.length).toBe(2);
    const params = await weightsOf('gguf', 'q4_0');
    for (const [name, v] of initialTrainables(r.config, LORA, true, 7))
      params.set(name, Float64Array.from(v));
    const cpu = forwardRef({ config: r.config, lora: LORA, mode: 'packed' }, params, batchOf(r.ids), 'cls');
    expect(relativeError(r.logits, cpu.logits)).toBeLessThan(FORWARD_TOL);
  });
});

describe('streaming upload', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vulnlab-gpu-load-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('holds about the largest tensor on the CPU, not the model', async () => {
    // tiny_starcoder's widths with 8 layers and a small vocabulary: many tensors, none dominant.
    const config = {
      ...findPreset('bigcode/tiny_starcoder_py')!.config,
      n_layer: 8,
      vocab_size: 1024,
      n_positions: 256,
    };
    await writeRandomCheckpoint(dir, config, 5);
    const ctx = gpu();
    const before = ctx.liveBuffers;
    const { model, upload, loaded } = await loadModelToGpu(ctx, new NodeDirModelFiles(dir), {
      weightFormat: 'q4_0',
      skipTokenizer: true,
      lora: LORA,
      objective: 'ntp',
      trainable: 'lora',
      mode: 'packed',
      initial: (c) => initialTrainables(c, LORA, false, 1),
    });
    const f32Bytes = baseParamSpecs(config, false).map((s) => s.shape.reduce((a, b) => a * b, 4));
    const largest = Math.max(...loaded.tensors.map((t) => t.bytes));
    // The largest tensor as it arrived (wte in f32) — one tensor, whatever the model's size.
    expect(upload.peakHeldBytes).toBe(largest);
    expect(upload.peakHeldBytes).toBeLessThanOrEqual(Math.max(...f32Bytes));
    const modelF32 = f32Bytes.reduce((a, b) => a + b, 0);
    expect(modelF32).toBeGreaterThan(20 * upload.peakHeldBytes);
    console.log(
      `peak CPU bytes held ${upload.peakHeldBytes} (largest tensor ${largest}); model ${modelF32} B in f32, ` +
        `${upload.gpuBytes} B on the GPU in q4_0 (+ LoRA, grads)`,
    );
    // Everything the model holds on the GPU was counted; destroy returns the context to its baseline.
    expect(ctx.liveBuffers.bytes - before.bytes).toBe(upload.gpuBytes);
    expect(model.paramBytes + model.gradBytes).toBe(upload.gpuBytes);
    model.destroy();
    expect(ctx.liveBuffers).toEqual(before);
  });
});

describe('a failing load leaves nothing on the GPU', () => {
  const options = {
    weightFormat: 'q8_0' as const,
    lora: LORA,
    objective: 'cls' as const,
    trainable: 'lora' as const,
    mode: 'packed' as const,
    initial: (c: Parameters<typeof initialTrainables>[0]) => initialTrainables(c, LORA, true, 1),
  };

  /** Runs a load expected to fail; returns its error and the most buffers that were live meanwhile. */
  async function failing(ctx: GpuContext, files: ModelFiles, o = options) {
    const before = ctx.liveBuffers;
    let peak = 0;
    const error = await loadModelToGpu(ctx, files, {
      ...o,
      onProgress: () => void (peak = Math.max(peak, ctx.liveBuffers.count - before.count)),
    }).catch((e: unknown) => e);
    expect(ctx.liveBuffers).toEqual(before);
    return { error: error as Error & { reason?: string; hint?: string }, uploaded: peak };
  }

  it('a read failure mid-stream', async () => {
    const inner = demo();
    let reads = 0;
    const files: ModelFiles = {
      label: 'flaky',
      list: () => inner.list(),
      open: async (p) => {
        const s = await inner.open(p);
        return {
          size: s.size,
          name: s.name,
          read: async (o: number, l: number) => {
            if (p === 'model.safetensors' && ++reads > 12) throw new Error('connection reset');
            return s.read(o, l);
          },
        };
      },
    };
    const { error, uploaded } = await failing(gpu(), files);
    expect(error.message).toBe('connection reset');
    expect(uploaded).toBeGreaterThan(4);
  });

  it('a checkpoint refused before streaming (missing tensor)', async () => {
    const files = demoFiles('bin');
    const { error, uploaded } = await failing(
      gpu(),
      new MemoryModelFiles(
        new Map([...files].map(([k, v]) => [k, k === 'config.json' ? withLayers(v, 3) : v])),
        'three-layers',
      ),
    );
    expect(error).toMatchObject({ reason: 'missing-tensor' });
    expect(uploaded).toBe(0);
  });

  it('parameters missing at finish (no score head supplied) after every checkpoint tensor', async () => {
    const { error, uploaded } = await failing(gpu(), demo(), { ...options, initial: () => new Map() });
    expect(error.message).toMatch(/missing score\.weight/);
    expect(error.hint).toBeTruthy();
    expect(uploaded).toBeGreaterThan(20);
  });

  it('a configuration the engine refuses (full finetuning of q8_0 weights)', async () => {
    const { error, uploaded } = await failing(gpu(), demo(), { ...options, trainable: 'all' as never });
    expect(error.message).toMatch(/Full finetuning needs f32 weights/);
    expect(uploaded).toBe(0);
  });

  it('the uploader itself: a wrong shape, a tensor twice or an unknown name destroys what it holds', async () => {
    const ctx = gpu();
    const config = JSON.parse(new TextDecoder().decode(demoFiles().get('config.json')));
    const before = ctx.liveBuffers;
    const begin = () =>
      DecoderGpu.begin(ctx, { config, lora: null, mode: 'packed', objective: 'ntp', trainable: 'all' });
    const bias = new Uint8Array(64 * 4);
    const cases: [string, (u: ReturnType<typeof begin>) => Promise<unknown>, RegExp][] = [
      ['shape', (u) => u.put('transformer.h.0.ln_1.bias', [32], 'f32', bias), /\[32\].*\[64\]/],
      [
        'twice',
        async (u) => {
          await u.put('transformer.h.0.ln_1.bias', [64], 'f32', bias);
          await u.put('transformer.h.0.ln_1.bias', [64], 'f32', bias);
        },
        /uploaded twice/,
      ],
      ['unknown', (u) => u.put('transformer.h.7.ln_1.bias', [64], 'f32', bias), /not a parameter/],
      ['short', (u) => u.put('transformer.h.0.mlp.c_fc.weight', [256, 64], 'q4_0', bias), /needs 9216/],
    ];
    for (const [what, act, message] of cases) {
      const u = begin();
      await u.put(
        'transformer.wte.weight',
        [config.vocab_size, 64],
        'q8_0',
        encodeWeight('q8_0', config.vocab_size, 64, new Float32Array(config.vocab_size * 64)),
      );
      expect(ctx.liveBuffers.count, what).toBeGreaterThan(before.count);
      await expect(act(u), what).rejects.toThrow(message);
      expect(ctx.liveBuffers, what).toEqual(before);
      await expect(u.finish(), what).rejects.toThrow(/aborted/);
    }
  });
});

/** config.json with another n_layer. */
function withLayers(bytes: Uint8Array, n: number): Uint8Array {
  const c = JSON.parse(new TextDecoder().decode(bytes));
  return new TextEncoder().encode(JSON.stringify({ ...c, n_layer: n }));
}
