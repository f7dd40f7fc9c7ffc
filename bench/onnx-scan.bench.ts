/**
 * Scan throughput of the demo detector (demo model + a seeded LoRA adapter) on the same functions
 * (the demo test split, tokenized once) in one run: the lab's WebGPU engine (Detector, Node/Dawn),
 * onnxruntime-node (CPU), onnxruntime-web's WASM backend in Node, and onnxruntime-web in headless
 * Chromium on WebGPU (SwiftShader) and WASM. The ONNX runtimes get the same batches (planBatches);
 * the lab engine packs functions into 1024-token rows as it does for evaluation. Figures only.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { importDataset } from '../src/data/import.ts';
import { findPreset } from '../src/io/presets.ts';
import { configForModel } from '../src/train/config.ts';
import { Detector } from '../src/train/detector.ts';
import {
  planBatches,
  scoreWithSession,
  type OrtSessionLike,
  type OrtTensorConstructor,
} from '../src/train/onnx/scan.ts';
import { prepareRunData } from '../src/train/prepare.ts';
import { launchChromium } from '../tests/e2e/browser.ts';
import { exportDetector, loadDemo, randomAdapter, tempDir, writeExport } from '../tests/onnx/helpers.ts';
import { median, type Bench, type BenchRow } from './harness.ts';
import { describeDecoder } from '../src/engine/model/decoder.ts';

const ORT_DIST = resolve('node_modules/onnxruntime-web/dist');
const TYPES: Record<string, string> = {
  '.mjs': 'text/javascript',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.html': 'text/html',
};

/** Serves ORT's browser build and the exported model on localhost (nothing leaves the machine). */
function serve(modelDir: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const [root, rest] = path.startsWith('/ort/')
      ? [ORT_DIST, path.slice(5)]
      : path.startsWith('/model/')
        ? [modelDir, path.slice(7)]
        : [null, ''];
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>onnx bench</title>');
      return;
    }
    try {
      if (!root || rest.includes('..')) throw new Error('not found');
      const body = readFileSync(join(root, rest));
      res.writeHead(200, { 'content-type': TYPES[extname(rest)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((done) =>
    server.listen(0, '127.0.0.1', () =>
      done({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }),
    ),
  );
}

interface PageBatch {
  ids: number[];
  mask: number[];
  dims: [number, number];
  rows: number[];
}

/** Runs in the page: loads ORT Web from the local server and times every batch on one provider. */
async function pageScore(args: { provider: string; batches: PageBatch[]; reps: number; n: number }) {
  const importer = new Function('u', 'return import(u)') as (
    u: string,
  ) => Promise<typeof import('onnxruntime-web')>;
  const ort = await importer('/ort/ort.bundle.min.mjs');
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create('/model/model.onnx', {
    executionProviders: [args.provider],
  });
  const probabilities = new Array<number>(args.n).fill(NaN);
  const once = async () => {
    for (const b of args.batches) {
      const out = await session.run({
        input_ids: new ort.Tensor('int64', BigInt64Array.from(b.ids.map(BigInt)), b.dims),
        attention_mask: new ort.Tensor('int64', BigInt64Array.from(b.mask.map(BigInt)), b.dims),
      });
      const p = out.probability.data as Float32Array;
      b.rows.forEach((row, i) => (probabilities[row] = p[i]));
    }
  };
  await once(); // warm-up: shader compilation, first allocation
  const times: number[] = [];
  for (let r = 0; r < args.reps; r++) {
    const t0 = performance.now();
    await once();
    times.push(performance.now() - t0);
  }
  await session.release();
  return { times, probabilities };
}

export const bench: Bench = {
  name: 'onnx-scan',
  description:
    'scan throughput (functions/s) of the demo detector: lab WebGPU engine vs onnxruntime-node vs onnxruntime-web (WASM in Node; WebGPU and WASM in Chromium)',
  async run({ ctx, quick }) {
    const reps = quick ? 1 : 3;
    const demo = await loadDemo();
    const adapter = randomAdapter(demo.model.config, 2024);
    const config = configForModel(findPreset('demo')?.runDefaults);
    const packLength = Math.min(config.batching.packLength, describeDecoder(demo.model.config).maxPositions);
    const { records } = await importDataset({
      name: 'java-vulns.jsonl',
      data: new Uint8Array(readFileSync('public/demo/java-vulns.jsonl')),
    });
    const split = prepareRunData(records, demo.tokenizer, config, packLength).data.test;
    // The shortest functions: WebGPU on SwiftShader (a CPU rasterizer) takes minutes on the long ones.
    const examples = [...split].sort((a, b) => a.tokens.length - b.tokens.length).slice(0, quick ? 8 : 32);
    const rows = examples.map((e) => e.tokens);
    const n = rows.length;
    const tokens = rows.reduce((sum, r) => sum + r.length, 0);
    const dir = tempDir('bench');
    const modelPath = writeExport(exportDetector(demo.model, adapter, 'f32'), dir);
    const results: BenchRow[] = [];
    const record = (runtime: string, backend: string, times: number[], note = '') => {
      const ms = median(times);
      results.push({
        runtime,
        backend,
        functions: n,
        tokens,
        'median ms': ms,
        'functions/s': (n / ms) * 1000,
        'tokens/s': (tokens / ms) * 1000,
        note,
      });
    };
    const timeIt = async (once: () => Promise<unknown>) => {
      await once();
      const times: number[] = [];
      for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        await once();
        times.push(performance.now() - t0);
      }
      return times;
    };
    const reference: number[] = [];
    const agreement: Record<string, number> = {};
    const compare = (name: string, p: ArrayLike<number>) => {
      let max = 0;
      for (let i = 0; i < n; i++) max = Math.max(max, Math.abs(p[i] - reference[i]));
      agreement[name] = max;
    };

    // The lab engine (f32 weights, the demo's 1024-token packs).
    const detector = await Detector.create(ctx, demo.model, adapter, { packLength });
    try {
      let scored: Awaited<ReturnType<Detector['score']>> = [];
      const times = await timeIt(async () => (scored = await detector.score(examples)));
      const byIndex = new Map(scored.map((s) => [s.exampleIndex, s.score]));
      examples.forEach((e, i) => (reference[i] = byIndex.get(e.exampleIndex)!));
      record(
        'lab engine (Detector)',
        `WebGPU: ${ctx.adapter.description || ctx.adapter.device || 'Dawn'}`,
        times,
      );
    } finally {
      detector.destroy();
    }

    const ortRun = async (
      name: string,
      backend: string,
      session: OrtSessionLike,
      Tensor: OrtTensorConstructor,
    ) => {
      let scores: Awaited<ReturnType<typeof scoreWithSession>> = [];
      const times = await timeIt(
        async () => (scores = await scoreWithSession(session, Tensor, rows, { padId: demo.model.padId })),
      );
      record(name, backend, times);
      compare(
        `${name} (${backend})`,
        scores.map((s) => s.probability),
      );
    };
    const nodeSession = await ortNode.InferenceSession.create(modelPath);
    await ortRun('onnxruntime-node', 'CPU', nodeSession, ortNode.Tensor as unknown as OrtTensorConstructor);
    await nodeSession.release();
    ortWeb.env.wasm.numThreads = 1;
    const webSession = await ortWeb.InferenceSession.create(modelPath);
    await ortRun(
      'onnxruntime-web',
      'WASM (Node, 1 thread)',
      webSession,
      ortWeb.Tensor as unknown as OrtTensorConstructor,
    );
    await webSession.release();

    // onnxruntime-web in Chromium: WebGPU on SwiftShader, then WASM; the same batches as above.
    const batches: PageBatch[] = planBatches(rows.map((r) => r.length)).map((rowsOfBatch) => {
      const S = Math.max(...rowsOfBatch.map((i) => rows[i].length));
      const ids = new Array<number>(rowsOfBatch.length * S).fill(demo.model.padId);
      const mask = new Array<number>(rowsOfBatch.length * S).fill(0);
      rowsOfBatch.forEach((i, b) => rows[i].forEach((t, k) => ((ids[b * S + k] = t), (mask[b * S + k] = 1))));
      return { ids, mask, dims: [rowsOfBatch.length, S], rows: rowsOfBatch };
    });
    const { server, url } = await serve(dir);
    const browser = await launchChromium({ webgpu: true });
    try {
      const page = await browser.newPage();
      // tsx (esbuild keepNames) wraps functions in __name(); pageScore runs in the page, where it is not defined.
      await page.addInitScript('globalThis.__name = (fn) => fn;');
      await page.goto(url);
      for (const [provider, backend] of [
        ['webgpu', 'WebGPU (Chromium, SwiftShader)'],
        ['wasm', 'WASM (Chromium, 1 thread)'],
      ] as const) {
        try {
          const out = await page.evaluate(pageScore, { provider, batches, reps, n });
          record('onnxruntime-web', backend, out.times);
          compare(`onnxruntime-web (${backend})`, out.probabilities);
        } catch (error) {
          results.push({
            runtime: 'onnxruntime-web',
            backend,
            functions: n,
            note: `failed: ${(error as Error).message.split('\n')[0]}`,
          });
        }
      }
    } finally {
      await browser.close();
      server.close();
    }
    const lab = results[0]['functions/s'] as number;
    return {
      rows: results,
      summary: {
        model: 'demo model + a seeded LoRA adapter and score head (tests/onnx/helpers.ts), f32 export',
        inputs: `the ${n} shortest functions of the demo test split (${tokens} tokens)`,
        reps,
        maxProbabilityDifferenceVsLabEngine: agreement,
        speedupVsLabEngine: Object.fromEntries(
          results
            .filter((r) => typeof r['functions/s'] === 'number')
            .map((r) => [`${r.runtime} ${r.backend}`, (r['functions/s'] as number) / lab]),
        ),
      },
    };
  },
};
