/**
 * Node-only scale check (a benchmark, not a test): writes a random checkpoint with a preset's exact
 * shapes as F16 safetensors (streamed to disk, never held in memory), loads it through `loadModel`
 * into a counting sink, and reports load MB/s against a plain sequential read of the same file, the
 * peak RSS, and the bytes the sink received against the planner's weight figure.
 *
 *   npx tsx src/io/node-scale-check.ts [preset-id] [weight-format] [dir]
 *   (defaults: WizardLMTeam/WizardCoder-1B-V1.0 q4_0 <os tmpdir>; the ≈2.3 GB file is kept for reruns)
 *
 * Exposed as functions so `npm run bench` can call it and record the figures.
 */
import { existsSync } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  LORA_TARGETS,
  baseParamSpecs,
  loraParamSpecs,
  resolveConfig,
  type GptBigCodeConfig,
} from '../engine/model/config.ts';
import { planMemory } from '../engine/model/memory-plan.ts';
import { f32ToF16, type WeightFormat } from '../engine/quant.ts';
import { Rng } from '../engine/random.ts';
import { findPreset } from './presets.ts';
import { loadModel } from './load.ts';
import { NodeDirModelFiles } from './node-files.ts';
import { NodeFileByteSource } from './node-source.ts';

/** Writes `<dir>/config.json` and an F16 `<dir>/model.safetensors` of random weights; returns the file size. */
export async function writeRandomCheckpoint(
  dir: string,
  config: GptBigCodeConfig,
  seed = 1,
): Promise<number> {
  await mkdir(dir, { recursive: true });
  const c = resolveConfig(config);
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
    JSON.stringify({ model_type: 'gpt_bigcode', ...config }, null, 2),
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
  uploadedBytes: number;
  /** The same, each tensor rounded up to whole 4-byte words as GPU buffers are. */
  uploadedBufferBytes: number;
  /** The planner's `weights` figure without the LoRA A/B it also counts (next-token objective: no score head). */
  plannedWeightBytes: number;
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

export async function runScaleCheck(
  presetId = 'WizardLMTeam/WizardCoder-1B-V1.0',
  weightFormat: WeightFormat = 'q4_0',
  root = join(tmpdir(), 'vulnlab-scale-check'),
): Promise<ScaleCheckResult> {
  const preset = findPreset(presetId);
  if (!preset) throw new Error(`unknown preset ${presetId}`);
  const dir = join(root, presetId.replace(/[^A-Za-z0-9._-]+/g, '_'));
  const file = join(dir, 'model.safetensors');
  const config = { ...preset.config };
  if (!existsSync(file)) await writeRandomCheckpoint(dir, config);
  const fileBytes = (await stat(file)).size;
  const seq = await sequentialReadMBps(file);
  (globalThis as { gc?: () => void }).gc?.();
  const baselineRssBytes = process.memoryUsage.rss();
  let peak = baselineRssBytes;
  const sample = () => (peak = Math.max(peak, process.memoryUsage.rss()));
  const timer = setInterval(sample, 20);
  let uploaded = 0;
  let uploadedBuffers = 0;
  const t0 = performance.now();
  try {
    await loadModel(new NodeDirModelFiles(dir), {
      weightFormat,
      skipTokenizer: true,
      sink: async (_name, _shape, _format, bytes) => {
        uploaded += bytes.byteLength;
        uploadedBuffers += Math.max(4, Math.ceil(bytes.byteLength / 4) * 4);
        sample();
      },
    });
  } finally {
    clearInterval(timer);
  }
  const loadSeconds = (performance.now() - t0) / 1000;
  const loraRank = 8;
  const plan = planMemory({
    config,
    weightFormat,
    loraRank,
    packLength: 128,
    packsPerStep: 1,
    recompute: true,
    trainable: 'lora',
    objective: 'ntp',
  });
  const loraBytes = loraParamSpecs(config, {
    r: loraRank,
    alpha: loraRank,
    dropout: 0,
    targets: [...LORA_TARGETS],
  }).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1) * 4, 0);
  return {
    preset: presetId,
    weightFormat,
    fileBytes,
    sequentialReadMBps: seq,
    loadSeconds,
    loadMBps: fileBytes / 1e6 / loadSeconds,
    peakRssBytes: peak,
    baselineRssBytes,
    uploadedBytes: uploaded,
    uploadedBufferBytes: uploadedBuffers,
    plannedWeightBytes: plan.weights - loraBytes,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [preset, format, dir] = process.argv.slice(2);
  runScaleCheck(preset, format as WeightFormat | undefined, dir).then(
    (r) => {
      const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
      console.log(JSON.stringify(r, null, 2));
      console.log(
        `${r.preset} → ${r.weightFormat}: ${(r.fileBytes / 1e9).toFixed(2)} GB in ${r.loadSeconds.toFixed(1)} s ` +
          `(${r.loadMBps.toFixed(0)} MB/s; sequential read ${r.sequentialReadMBps.toFixed(0)} MB/s), ` +
          `peak RSS ${mb(r.peakRssBytes)} (baseline ${mb(r.baselineRssBytes)}), ` +
          `sink ${mb(r.uploadedBufferBytes)} vs planned ${mb(r.plannedWeightBytes)}`,
      );
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
