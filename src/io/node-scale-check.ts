/**
 * Node-only scale check (a benchmark, not a test): writes a random checkpoint with a preset's exact
 * shapes as F16 safetensors (streamed to disk, never held in memory) and loads it — with a GPU
 * context, through `loadModelToGpu` onto the GPU (LoRA r 8 on every linear, next-token objective);
 * without one, through `loadModel` into a counting sink. It reports load MB/s against a plain
 * sequential read of the same file, the peak RSS, the most CPU bytes the upload held at once, and
 * the bytes uploaded (or allocated on the GPU) against the memory planner's weight figure.
 *
 *   npx tsx src/io/node-scale-check.ts [preset-id] [weight-format] [dir] [--gpu]
 *   (defaults: WizardLMTeam/WizardCoder-1B-V1.0 q4_0 <os tmpdir>; the ≈2.3 GB file is kept for reruns)
 *
 * Exposed as functions so `npm run bench` can call it and record the figures.
 */
import { existsSync } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { GpuContext } from '../engine/gpu/index.ts';
import { createNodeContext } from '../engine/gpu/node.ts';
import { numel, resolveConfig, type LoraConfig } from '../engine/model/config.ts';
import {
  baseParamSpecs,
  describeDecoder,
  isLlamaFamily,
  loraParamSpecs,
  type ModelConfig,
} from '../engine/model/decoder.ts';
import { planMemory } from '../engine/model/memory-plan.ts';
import { f32ToF16, type WeightFormat } from '../engine/quant.ts';
import { Rng } from '../shared/random.ts';
import { findPreset } from './presets.ts';
import { loadModelToGpu } from './load-gpu.ts';
import { loadModel, type LoadedModel } from './load.ts';
import { NodeDirModelFiles } from './node-files.ts';
import { NodeFileByteSource } from './node-source.ts';

/** Writes `<dir>/config.json` and an F16 `<dir>/model.safetensors` of random weights; returns the file size. */
export async function writeRandomCheckpoint(dir: string, config: ModelConfig, seed = 1): Promise<number> {
  await mkdir(dir, { recursive: true });
  const c = isLlamaFamily(config) ? config : resolveConfig(config);
  const specs = baseParamSpecs(c, false);
  // Header first (offsets are known from the shapes), then the tensors one by one.
  let offset = 0;
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', source: 'vulnlab scale check' } };
  for (const s of specs) {
    const bytes = s.shape.reduce((a, b) => a * b, 1) * 2;
    header[s.name] = { dtype: 'F16', shape: s.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (new TextEncoder().encode(json).length % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const { writeFile } = await import('node:fs/promises');
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify(isLlamaFamily(config) ? config : { model_type: 'gpt_bigcode', ...config }, null, 2),
  );
  const fh = await open(join(dir, 'model.safetensors'), 'w');
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
    await fh.write(len);
    await fh.write(headerBytes);
    // A pool of N(0, 0.02) halves, read at random offsets: realistic magnitudes without generating
    // a billion normals.
    const rng = new Rng(seed);
    const pool = new Uint16Array(1 << 22);
    for (let i = 0; i < pool.length; i++) pool[i] = f32ToF16(0.02 * rng.normal());
    const chunk = 1 << 21;
    for (const s of specs) {
      let left = s.shape.reduce((a, b) => a * b, 1);
      while (left > 0) {
        const n = Math.min(chunk, left);
        const start = rng.int(pool.length - n);
        await fh.write(new Uint8Array(pool.buffer, start * 2, n * 2));
        left -= n;
      }
    }
  } finally {
    await fh.close();
  }
  return (await stat(join(dir, 'model.safetensors'))).size;
}

export interface ScaleCheckResult {
  preset: string;
  weightFormat: WeightFormat;
  fileBytes: number;
  sequentialReadMBps: number;
  loadSeconds: number;
  loadMBps: number;
  peakRssBytes: number;
  baselineRssBytes: number;
  /** Bytes of the tensors handed over by the loader (checkpoint tensors in their target format). */
  uploadedBytes: number;
  /** The same, each tensor rounded up to whole 4-byte words as GPU buffers are. */
  uploadedBufferBytes: number;
  /** The planner's `weights` figure without the LoRA A/B it also counts (next-token objective: no score head). */
  plannedWeightBytes: number;
  /** The GPU path: what the model allocated and what the streaming upload held on the CPU. */
  gpu?: {
    adapter: string;
    /** A CPU adapter (lavapipe, SwiftShader) keeps "GPU" buffers in this process: they count in RSS. */
    cpuAdapter: boolean;
    /** Bytes of the model's parameter buffers (base weights, LoRA A/B). */
    paramBytes: number;
    /** The planner's `weights` figure (base weights and LoRA A/B). */
    plannedParamBytes: number;
    /** Most CPU bytes the upload held at once, and the largest tensor as the loader handed it over. */
    peakHeldBytes: number;
    largestTensorBytes: number;
  };
}

/** Sequential read of a whole file in 16 MiB chunks (the I/O ceiling for the load). */
export async function sequentialReadMBps(path: string): Promise<number> {
  const src = await NodeFileByteSource.open(path);
  const t0 = performance.now();
  try {
    for (let o = 0; o < src.size; o += 16 << 20) await src.read(o, Math.min(16 << 20, src.size - o));
  } finally {
    await src.close();
  }
  return src.size / 1e6 / ((performance.now() - t0) / 1000);
}

const LORA_RANK = 8;

export async function runScaleCheck(
  presetId = 'WizardLMTeam/WizardCoder-1B-V1.0',
  weightFormat: WeightFormat = 'q4_0',
  root = join(tmpdir(), 'vulnlab-scale-check'),
  ctx?: GpuContext,
): Promise<ScaleCheckResult> {
  const preset = findPreset(presetId);
  if (!preset) throw new Error(`unknown preset ${presetId}`);
  const dir = join(root, presetId.replace(/[^A-Za-z0-9._-]+/g, '_'));
  const file = join(dir, 'model.safetensors');
  const config = { ...preset.config };
  if (!existsSync(file)) await writeRandomCheckpoint(dir, config);
  const fileBytes = (await stat(file)).size;
  const seq = await sequentialReadMBps(file);
  const targets = describeDecoder(config).loraTargets.filter((t) => t !== 'wte');
  const lora: LoraConfig = { r: LORA_RANK, alpha: LORA_RANK, dropout: 0, targets };
  const loraSpecs = loraParamSpecs(config, lora);
  (globalThis as { gc?: () => void }).gc?.();
  const baselineRssBytes = process.memoryUsage.rss();
  let peak = baselineRssBytes;
  const sample = () => void (peak = Math.max(peak, process.memoryUsage.rss()));
  const timer = setInterval(sample, 20);
  const files = new NodeDirModelFiles(dir);
  let loaded: LoadedModel;
  let gpu: ScaleCheckResult['gpu'];
  const t0 = performance.now();
  try {
    if (ctx) {
      const r = await loadModelToGpu(ctx, files, {
        weightFormat,
        skipTokenizer: true,
        lora,
        objective: 'ntp',
        trainable: 'lora',
        mode: 'packed',
        // The values do not matter here: zeros of the LoRA shapes.
        initial: () => new Map(loraSpecs.map((s) => [s.name, new Float32Array(numel(s.shape))])),
        onProgress: sample,
      });
      sample();
      loaded = r.loaded;
      gpu = {
        adapter: ctx.adapter.description || ctx.adapter.device || ctx.adapter.vendor,
        cpuAdapter: ctx.adapter.isFallbackAdapter || ctx.adapter.architecture === 'software',
        paramBytes: r.model.paramBytes,
        plannedParamBytes: 0,
        peakHeldBytes: r.upload.peakHeldBytes,
        largestTensorBytes: Math.max(...r.loaded.tensors.map((t) => t.bytes)),
      };
      r.model.destroy();
    } else {
      loaded = await loadModel(files, { weightFormat, skipTokenizer: true, sink: async () => sample() });
    }
  } finally {
    clearInterval(timer);
  }
  const loadSeconds = (performance.now() - t0) / 1000;
  const plan = planMemory({
    config,
    weightFormat,
    loraRank: LORA_RANK,
    packLength: 128,
    packsPerStep: 1,
    recompute: true,
    trainable: 'lora',
    objective: 'ntp',
  });
  const loraBytes = loraSpecs.reduce((s, p) => s + numel(p.shape) * 4, 0);
  if (gpu) gpu.plannedParamBytes = plan.weights;
  return {
    preset: presetId,
    weightFormat,
    fileBytes,
    sequentialReadMBps: seq,
    loadSeconds,
    loadMBps: fileBytes / 1e6 / loadSeconds,
    peakRssBytes: peak,
    baselineRssBytes,
    uploadedBytes: loaded.uploadedBytes,
    uploadedBufferBytes: loaded.tensors.reduce((s, t) => s + Math.max(4, Math.ceil(t.bytes / 4) * 4), 0),
    plannedWeightBytes: plan.weights - loraBytes,
    gpu,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const [preset, format, dir] = args.filter((a) => !a.startsWith('--'));
  const ctx = args.includes('--gpu') ? await createNodeContext() : undefined;
  runScaleCheck(preset, format as WeightFormat | undefined, dir, ctx).then(
    (r) => {
      const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
      console.log(JSON.stringify(r, null, 2));
      console.log(
        `${r.preset} → ${r.weightFormat}: ${(r.fileBytes / 1e9).toFixed(2)} GB in ${r.loadSeconds.toFixed(1)} s ` +
          `(${r.loadMBps.toFixed(0)} MB/s; sequential read ${r.sequentialReadMBps.toFixed(0)} MB/s), ` +
          `peak RSS ${mb(r.peakRssBytes)} (baseline ${mb(r.baselineRssBytes)}), ` +
          `sink ${mb(r.uploadedBufferBytes)} vs planned ${mb(r.plannedWeightBytes)}` +
          (r.gpu
            ? `; GPU ${mb(r.gpu.paramBytes)} vs planned ${mb(r.gpu.plannedParamBytes)}, ` +
              `held at once ${mb(r.gpu.peakHeldBytes)}`
            : ''),
      );
      ctx?.destroy();
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
      ctx?.destroy();
    },
  );
}
