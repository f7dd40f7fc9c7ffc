/**
 * Model loading in the browser: a test-only page (tests/e2e/model-load/, built here with Vite, never
 * part of the app) loads the demo model over HTTP Range requests from safetensors, .bin and GGUF
 * through `loadModelToGpu` on Chromium's WebGPU adapter (SwiftShader here), runs the engine's forward
 * and compares the logits with the f32 safetensors load in the page — the Node test's check
 * (tests/gpu/model-load.test.ts), on the browser's side.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import type { PreviewServer } from 'vite';
import { DEMO_DIR, FIXTURES } from '../io/helpers/fixtures.ts';
import { logitTolerance } from '../io/helpers/gpu-forward.ts';
import type { PageCase, PageReport } from './model-load/page.ts';
import { launchChromium, RESULTS_DIR, serveTestPage } from './browser.ts';

const ROOT = resolve('tests/e2e/model-load');
const OUT = resolve(RESULTS_DIR, 'model-load-page');

const CASES: PageCase[] = [
  { checkpoint: 'bin', weightFormat: 'f32' },
  { checkpoint: 'gguf', weightFormat: 'q8_0' },
  { checkpoint: 'safetensors', weightFormat: 'q4_0' },
  { checkpoint: 'bin', weightFormat: 'f16' },
];

describe('loading the demo model in the page (safetensors, .bin, GGUF over HTTP Range)', () => {
  let server: PreviewServer;
  let browser: Browser;
  let url: string;

  beforeAll(async () => {
    // The three checkpoints side by side in one served folder (the .bin and GGUF are test fixtures).
    ({ server, url } = await serveTestPage(ROOT, OUT, (out) => {
      const models = join(out, 'models/demo');
      mkdirSync(models, { recursive: true });
      for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'])
        copyFileSync(join(DEMO_DIR, f), join(models, f));
      for (const f of ['pytorch_model.bin', 'demo-q8_0.gguf'])
        copyFileSync(join(FIXTURES, 'demo', f), join(models, f));
    }));
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('gives the f32 logits (identical from .bin f32) within each format’s tolerance', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url);
    await expect.poll(() => page.evaluate(() => document.body.dataset.ready)).toBe('true');
    const report = await page.evaluate(
      ([folder, cases]) =>
        (
          window as unknown as { modelLoadCheck: (f: string, c: PageCase[]) => Promise<PageReport> }
        ).modelLoadCheck(folder, cases),
      ['models/demo/', CASES] as const,
    );
    console.log(
      `${report.adapter}: ` +
        report.results
          .map((r) => `${r.checkpoint}/${r.weightFormat} ${r.error.toExponential(2)} (${r.ms.toFixed(0)} ms)`)
          .join(', '),
    );
    expect(report.reference.tokens).toBe(45); // the sample method in the demo model's 4,096-token BPE
    expect(report.reference.maxAbs).toBeGreaterThan(0.05);
    expect(report.results.map((r) => r.loadedFormat)).toEqual(CASES.map((c) => c.checkpoint));
    for (const r of report.results) {
      const key = `${r.checkpoint}/${r.weightFormat}`;
      expect(r.tokens, key).toBe(45);
      expect(r.error, key).toBeLessThanOrEqual(logitTolerance(r.checkpoint, r.weightFormat));
      expect(r.peakHeldBytes, key).toBe(r.largestTensorBytes);
    }
    expect(report.results[0].error).toBe(0);
    expect(report.results[2].error).toBeGreaterThan(0);
    expect(report.leakedBuffers).toBe(0);
    expect(errors).toEqual([]);
  });
});
