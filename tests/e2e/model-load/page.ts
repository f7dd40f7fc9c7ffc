/**
 * Test-only page (built and served by tests/e2e/model-load.e2e.ts, never part of the app): loads the
 * demo model over HTTP Range requests through `loadModelToGpu` in each requested checkpoint and
 * weight format, runs the engine's forward and returns each load's logits error against the f32
 * safetensors load, all in the page on the browser's WebGPU adapter.
 */
import { createBrowserContext } from '../../../src/engine/gpu/browser.ts';
import type { WeightFormat } from '../../../src/engine/quant.ts';
import { StaticHttpModelFiles } from '../../../src/io/files.ts';
import type { CheckpointFormat } from '../../../src/io/load.ts';
import { loadAndForward } from '../../io/helpers/gpu-forward.ts';
import { relativeError } from '../../helpers/relative-error.ts';

export interface PageCase {
  checkpoint: CheckpointFormat;
  weightFormat: WeightFormat;
}

export interface PageResult extends PageCase {
  loadedFormat: CheckpointFormat;
  tokens: number;
  /** relativeError(logits, f32 safetensors logits). */
  error: number;
  peakHeldBytes: number;
  largestTensorBytes: number;
  ms: number;
}

export interface PageReport {
  adapter: string;
  reference: { tokens: number; logits: number; maxAbs: number };
  results: PageResult[];
  /** Buffers the loads left on the GPU (every model and step is destroyed: 0). */
  leakedBuffers: number;
}

const FILES = [
  'config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'model.safetensors',
  'pytorch_model.bin',
  'demo-q8_0.gguf',
];

async function modelLoadCheck(folder: string, cases: PageCase[]): Promise<PageReport> {
  const ctx = await createBrowserContext();
  try {
    const files = new StaticHttpModelFiles(new URL(folder, location.href).href, FILES, 'demo');
    const before = ctx.liveBuffers.count;
    const ref = await loadAndForward(ctx, files, 'safetensors', 'f32');
    const results: PageResult[] = [];
    for (const { checkpoint, weightFormat } of cases) {
      const t0 = performance.now();
      const r = await loadAndForward(ctx, files, checkpoint, weightFormat);
      results.push({
        checkpoint,
        weightFormat,
        loadedFormat: r.loaded.format,
        tokens: r.ids.length,
        error: relativeError(r.logits, ref.logits),
        peakHeldBytes: r.upload.peakHeldBytes,
        largestTensorBytes: Math.max(...r.loaded.tensors.map((t) => t.bytes)),
        ms: performance.now() - t0,
      });
    }
    return {
      adapter: [ctx.adapter.vendor, ctx.adapter.architecture, ctx.adapter.description]
        .filter(Boolean)
        .join(' '),
      reference: {
        tokens: ref.ids.length,
        logits: ref.logits.length,
        maxAbs: ref.logits.reduce((m, v) => Math.max(m, Math.abs(v)), 0),
      },
      results,
      leakedBuffers: ctx.liveBuffers.count - before,
    };
  } finally {
    ctx.destroy();
  }
}

(window as unknown as { modelLoadCheck: typeof modelLoadCheck }).modelLoadCheck = modelLoadCheck;
document.body.dataset.ready = 'true';
