/**
 * The golden parity suite in the browser: a test-only page (tests/e2e/golden-parity/, built here with
 * Vite, never part of the app) fetches the PyTorch float64 fixtures (tests/fixtures/engine/*.json) and
 * runs the check of tests/gpu/model.test.ts (tests/helpers/golden-parity.ts: hidden states, logits,
 * loss, gradients, grad norm, 3 AdamW steps) for every fixture on both kernel sets, on Chromium's
 * WebGPU adapter (SwiftShader) — the Node test runs the same check on Dawn/lavapipe.
 */
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import type { PreviewServer } from 'vite';
import type { KernelSet } from '../../src/engine/gpu/context.ts';
import {
  FORWARD_TOL,
  FAMILY_GRAD_TOL,
  STEP1_TOL,
  UPDATE_TOL,
  worstByKind,
  type ParityKind,
} from '../helpers/golden-parity.ts';
import type { PageReport } from './golden-parity/page.ts';
import { launchChromium, RESULTS_DIR, serveTestPage } from './browser.ts';

const ROOT = resolve('tests/e2e/golden-parity');
const OUT = resolve(RESULTS_DIR, 'golden-parity-page');
const FIXTURES = resolve('tests/fixtures/engine');
const KERNEL_SETS: KernelSet[] = ['cpu', 'gpu'];

// Measured on the loaded 2-core machine (fresh Chromium profile, so cold shader caches), two runs:
// 12 checks in 68-87 s (77-105 s with the page build), 36-43 s of it the first gpu-set case (the
// first compile of the flash attention, tiled and rows pipelines), 9-16 s the first cpu-set case;
// 10 minutes leaves room for a slower, busier machine.
describe(
  'golden parity in Chromium (SwiftShader): every fixture on both kernel sets',
  { timeout: 600_000 },
  () => {
    let server: PreviewServer;
    let browser: Browser;
    let url: string;
    let fixtures: string[];

    beforeAll(async () => {
      // The fixtures served beside the page (fetched and parsed there with the engine's parseGoldenCase).
      fixtures = readdirSync(FIXTURES)
        .filter((f) => f.endsWith('.json'))
        .sort();
      ({ server, url } = await serveTestPage(ROOT, OUT, (out) => {
        const dir = join(out, 'fixtures');
        mkdirSync(dir, { recursive: true });
        for (const f of fixtures) copyFileSync(join(FIXTURES, f), join(dir, f));
      }));
      browser = await launchChromium();
    });

    afterAll(async () => {
      await browser?.close();
      await server?.close();
    });

    it('matches PyTorch within the Node test’s tolerances, with the gpu set’s tiled/flash/rows dispatches', async () => {
      expect(fixtures.length).toBeGreaterThanOrEqual(6);
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(url);
      await expect.poll(() => page.evaluate(() => document.body.dataset.ready)).toBe('true');
      const t0 = performance.now();
      const result = await page.evaluate(
        ([files, sets]) =>
          (
            window as unknown as { goldenParityCheck: (f: string[], k: KernelSet[]) => Promise<PageReport> }
          ).goldenParityCheck(files, sets),
        [fixtures.map((f) => `fixtures/${f}`), KERNEL_SETS] as const,
      );
      const seconds = (performance.now() - t0) / 1000;
      const worst = worstByKind(result.reports);
      console.log(
        `${result.adapter}: ${result.reports.length} checks in ${seconds.toFixed(0)} s (` +
          result.reports.map((r) => `${r.name}/${r.kernels} ${(r.ms / 1000).toFixed(1)} s`).join(', ') +
          ')\nworst errors (error / tolerance): ' +
          [...worst]
            .map(
              ([kind, e]) =>
                `${kind} ${e.error.toExponential(2)} / ${e.tol.toExponential(0)} (${e.name}/${e.kernels} ${e.quantity})`,
            )
            .join('; '),
      );

      expect(result.adapter).toMatch(/swiftshader/i);
      expect(result.defaultKernels).toBe('cpu'); // a CPU-backed adapter gets the cpu set unless told otherwise
      expect(result.reports.map((r) => `${r.name}/${r.kernels}`)).toEqual(
        KERNEL_SETS.flatMap((k) => fixtures.map((f) => `${f.replace(/\.json$/, '')}/${k}`)),
      );
      for (const r of result.reports) {
        const key = `${r.name}/${r.kernels}`;
        expect(r.validationErrors, key).toEqual([]);
        expect(r.trainable.got, key).toEqual(r.trainable.want);
        // The gpu set: tiled matmul/linear, every attention dispatch flash, every layernorm rows; the cpu set none.
        expect(r.labels.attention.length, key).toBeGreaterThan(0);
        expect(r.labels.gpuVariants, `${key} gpu variants`).toBe(r.kernels === 'gpu');
        expect(r.labels.cpuVariants, `${key} cpu variants`).toBe(r.kernels === 'cpu');
        for (const [s, st] of r.steps.entries()) {
          expect(st.nonFinite, `${key} step ${s} non-finite`).toBe(false);
          if (st.wantClipped !== undefined) expect(st.clipped, `${key} step ${s}`).toBe(st.wantClipped);
        }
        const kinds = new Set<ParityKind>(r.errors.map((e) => e.kind));
        for (const kind of ['forward', 'grad', 'step1', 'update'] as const)
          expect(kinds.has(kind), key).toBe(true);
        const tol: Record<ParityKind, number> = {
          forward: FORWARD_TOL,
          grad: FAMILY_GRAD_TOL, // at most: each case carries its own (gradTolerance: GRAD_TOL for GPT-BigCode)
          step1: STEP1_TOL,
          update: UPDATE_TOL,
          'adam-bound': Infinity, // per case (1.01·steps·lr + 1e-6), carried in the report
        };
        for (const e of r.errors) {
          expect(e.tol, `${key} ${e.quantity} tolerance`).toBeLessThanOrEqual(tol[e.kind]);
          expect(e.error, `${key} ${e.quantity}`).toBeLessThan(e.tol);
        }
      }
      expect(result.leakedBuffers).toBe(0);
      expect(errors).toEqual([]);
    });
  },
);
