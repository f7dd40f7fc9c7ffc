import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { PreviewServer } from 'vite';
import {
  closeScorePairs,
  expectAveragePrecisionClose,
  expectRocAucClose,
  nearThreshold,
} from '../helpers/metric-tolerance.ts';
import { launchChromium, RESULTS_DIR, serveBuild } from './browser.ts';

/**
 * The same run in the lab (Chromium, WebGPU on SwiftShader) and on the command line (Node, Dawn on
 * lavapipe): same data file, same partial config, same seed — so the same config after the model's
 * defaults are layered in, the same splits, tokens and batches, and the same metrics. Only the two
 * software GPUs' float rounding may differ; the tolerances below say by how much.
 */

const LONG = 240_000;

/**
 * The run's settings as a user would give them: `weightFormat` is left to the demo model's own
 * defaults (f32), which both the lab and the CLI must layer in the same way.
 */
const CONFIG = {
  lora: { r: 4 },
  optimizer: { lr: 2e-3 },
  batching: { packLength: 128, packsPerStep: 2 },
  epochs: 1,
  evalEvery: 4,
  checkpointEvery: 0,
  seed: 11,
};

/** Per-step training loss (full precision from metrics.json): the two GPUs' float32 rounding only. */
const LOSS_TOLERANCE = 1e-5;
/**
 * |Δp| of one function's probability between the two GPUs (checked on the scanned methods). The
 * threshold is a validation score, so it moves by as much while both pick the same example; ROC AUC
 * and PR AUC get tolerances derived from it and the CLI's scores (tests/helpers/metric-tolerance.ts):
 * a (positive, negative) pair within 2·SCORE_TOLERANCE may swap and move ROC AUC by 1/(P·N).
 */
const SCORE_TOLERANCE = 1e-4;
/**
 * Adapter weights after training (each element relative to its tensor's largest value). Adam
 * divides by the root of the squared gradients, so where a gradient is tiny its rounding noise
 * becomes a step of up to the learning rate: a few 1e-4 after 4 steps (observed 3e-4).
 */
const WEIGHT_TOLERANCE = 2e-3;
/** The same as a norm: ‖lab − CLI‖ / ‖CLI‖ over every adapter tensor (observed 8e-7). */
const WEIGHT_NORM_TOLERANCE = 1e-5;

/** 12 + 12 training, 6 + 6 validation and 6 + 6 test functions of the demo data, split field kept. */
function writeSlice(path: string): void {
  const lines = readFileSync('public/demo/java-vulns.jsonl', 'utf8').trim().split('\n');
  const rows = lines.map((line) => ({ line, row: JSON.parse(line) as { split: string; target: number } }));
  const pick = (split: string, perClass: number) =>
    [1, 0].flatMap((label) =>
      rows
        .filter((r) => r.row.split === split && Number(r.row.target) === label)
        .slice(perClass, 2 * perClass)
        .map((r) => r.line),
    );
  writeFileSync(path, [...pick('train', 12), ...pick('validation', 6), ...pick('test', 6)].join('\n') + '\n');
}

/** Four functions of the demo data's test split (not in the slice) as methods of one class. */
function javaClass(): string {
  const rows = readFileSync('public/demo/java-vulns.jsonl', 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { code: string; split: string; target: number })
    .filter((r) => r.split === 'test');
  const picked = [
    ...rows.filter((r) => r.target === 1).slice(-2),
    ...rows.filter((r) => r.target === 0).slice(-2),
  ];
  return `public class Scanned {\n${picked.map((r) => r.code).join('\n\n')}\n}\n`;
}

/** The CLI's scores.csv rows of one split: scores and labels in file order. */
function readScores(path: string, split: string): { scores: number[]; labels: number[] } {
  const [header, ...rows] = readFileSync(path, 'utf8').trim().split('\n');
  expect(header).toBe('split,example_index,label,score,cwe');
  const picked = rows.map((row) => row.split(',')).filter(([s]) => s === split);
  return { scores: picked.map((r) => Number(r[3])), labels: picked.map((r) => Number(r[2])) };
}

/**
 * The lab's F1-maximising threshold against the CLI's: the same example's score (within
 * SCORE_TOLERANCE) when no two validation scores lie within 2·SCORE_TOLERANCE, so both GPUs order
 * validation alike; otherwise near-tied examples may trade places and the lab may pick another
 * example, whose score must still be one of the CLI's validation scores (within SCORE_TOLERANCE).
 */
function expectSameThreshold(labThreshold: number, cliThreshold: number, validationScores: number[]): void {
  const close = closeScorePairs(validationScores, SCORE_TOLERANCE);
  if (close === 0) {
    expect(
      Math.abs(labThreshold - cliThreshold),
      `threshold ${labThreshold} (lab) vs ${cliThreshold} (CLI), score tolerance ${SCORE_TOLERANCE}`,
    ).toBeLessThanOrEqual(SCORE_TOLERANCE);
  } else {
    const nearest = Math.min(...validationScores.map((s) => Math.abs(s - labThreshold)));
    console.log(
      `${close} pairs of validation scores lie within 2·${SCORE_TOLERANCE}: the lab's threshold ${labThreshold} ` +
        `is checked to be a validation score (nearest CLI score ${nearest.toExponential(2)} away), not the CLI's ${cliThreshold}`,
    );
    expect(nearest, `lab threshold ${labThreshold} vs the CLI's validation scores`).toBeLessThanOrEqual(
      SCORE_TOLERANCE,
    );
  }
}

/** Tensors of a safetensors file as f32 arrays. */
function readSafetensors(path: string): Map<string, Float32Array> {
  const bytes = readFileSync(path);
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Record<
    string,
    { dtype: string; data_offsets: [number, number] }
  >;
  const out = new Map<string, Float32Array>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    expect(t.dtype, name).toBe('F32');
    const data = bytes.subarray(8 + length + t.data_offsets[0], 8 + length + t.data_offsets[1]);
    out.set(name, new Float32Array(new Uint8Array(data).buffer));
  }
  return out;
}

function runCli(args: string[]): Promise<{ code: number; stdout: string; output: string; seconds: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(
      'node',
      ['--import', 'tsx', 'src/cli/main.ts', ...args],
      { timeout: LONG, maxBuffer: 64 << 20 },
      (error, stdout, stderr) =>
        resolve({
          code: error ? ((error as { code?: number }).code ?? -1) : 0,
          stdout,
          output: `${stdout}\n${stderr}`,
          seconds: (performance.now() - started) / 1000,
        }),
    );
  });
}

interface BrowserRun {
  config: Record<string, unknown>;
  steps: number;
  bestStep: number;
  threshold: number;
  validation: { rocAuc: number | null; prAuc: number | null; n: number };
  test: { rocAuc: number | null; prAuc: number | null; n: number; positives: number };
  loss: { step: number; loss: number }[];
}

const text = (page: Page, testId: string) =>
  page
    .getByTestId(testId)
    .innerText()
    .catch(() => '');

async function panel(page: Page, name: string): Promise<void> {
  await page.getByRole('tab', { name }).click();
  await expect.poll(() => page.getByRole('tabpanel').locator('h2').innerText()).toBe(name);
}

describe('the lab and the CLI', () => {
  let browser: Browser;
  let server: PreviewServer;
  let page: Page;
  let url: string;
  const errors: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'vulnlab-parity-'));
  const slice = join(dir, 'slice.jsonl');
  const configFile = join(dir, 'config.json');
  const out = join(dir, 'cli-run');

  beforeAll(async () => {
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeSlice(slice);
    writeFileSync(configFile, JSON.stringify(CONFIG));
    const served = await serveBuild();
    server = served.server;
    url = served.url;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (error) => errors.push(String(error)));
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it(
    'give the same steps, losses, threshold, ROC AUC, PR AUC and adapter weights for the same run',
    async () => {
      // The CLI trains in a child process while the browser trains; both are CPU-bound software GPUs.
      const cli = runCli(['train', '--model', 'demo', '--data', slice, '--config', configFile, '--out', out]);
      const started = performance.now();

      await page.goto(`${url}#config=${encodeURIComponent(JSON.stringify(CONFIG))}`);
      await page.locator('[data-testid="adapter-line"][data-state="ready"]').waitFor({ timeout: 60_000 });
      await panel(page, 'Model');
      await page.getByRole('button', { name: 'Load the demo model' }).click();
      await expect.poll(() => text(page, 'model-info'), { timeout: 60_000 }).toMatch(/demo/);
      await panel(page, 'Data');
      await page.getByTestId('data-files').setInputFiles(slice);
      await expect
        .poll(() => text(page, 'data-summary'), { timeout: 60_000 })
        .toMatch(/48 functions imported/);
      await panel(page, 'Train');
      await page.getByRole('button', { name: 'Start', exact: true }).click();
      const state = page.getByTestId('run-state');
      await expect
        .poll(() => state.getAttribute('data-state').catch(() => ''), { timeout: LONG, interval: 1000 })
        .toMatch(/finished|stopped|failed/);
      expect(await state.getAttribute('data-state'), await text(page, 'run-error')).toBe('finished');
      const browserSeconds = (performance.now() - started) / 1000;

      await panel(page, 'Results');
      const [metricsDownload] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'Metrics of the compared runs: JSON' }).click(),
      ]);
      const metricsPath = join(RESULTS_DIR, 'parity-browser-metrics.json');
      await metricsDownload.saveAs(metricsPath);
      const [lab] = JSON.parse(readFileSync(metricsPath, 'utf8')) as BrowserRun[];
      await page.getByRole('button', { name: /Export the PEFT adapter/ }).click();
      const link = page.getByTestId('adapter-files').getByRole('link', { name: 'adapter_model.safetensors' });
      await link.waitFor({ timeout: 60_000 });
      const [adapterDownload] = await Promise.all([page.waitForEvent('download'), link.click()]);
      const adapterPath = join(RESULTS_DIR, 'parity-browser-adapter.safetensors');
      await adapterDownload.saveAs(adapterPath);
      const settingsLink = page
        .getByTestId('adapter-files')
        .getByRole('link', { name: 'vulnlab_detector.json' });
      const [settingsDownload] = await Promise.all([page.waitForEvent('download'), settingsLink.click()]);
      const settingsPath = join(RESULTS_DIR, 'parity-browser-vulnlab_detector.json');
      await settingsDownload.saveAs(settingsPath);

      const cliResult = await cli;
      expect(cliResult.code, cliResult.output.slice(-3000)).toBe(0);
      const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
      const cliConfig = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
      const cliLoss = (metrics.curves.train as { step: number; loss: number }[]).map(({ step, loss }) => ({
        step,
        loss,
      }));

      // Same config (the demo model's defaults layered in the same way), same data, same batches.
      expect(lab.config).toEqual(cliConfig);
      expect(lab.config.weightFormat).toBe('f32');
      expect(lab.steps).toBe(metrics.steps);
      expect(lab.steps).toBeGreaterThanOrEqual(6);
      expect(lab.test.n).toBe(metrics.test.n);
      expect(lab.validation.n).toBe(metrics.valid.n);
      expect(lab.loss.map((p) => p.step)).toEqual(cliLoss.map((p) => p.step));

      const lossDiff = Math.max(...lab.loss.map((p, i) => Math.abs(p.loss - cliLoss[i].loss)));
      const cliValidation = readScores(join(out, 'scores.csv'), 'validation');
      const cliTest = readScores(join(out, 'scores.csv'), 'test');
      expect(cliValidation.scores.length).toBe(metrics.valid.n);
      expect(cliTest.scores.length).toBe(metrics.test.n);
      const diffs = {
        loss: lossDiff,
        threshold: Math.abs(lab.threshold - metrics.valid.threshold),
        validationRocAuc: Math.abs(lab.validation.rocAuc! - metrics.valid.roc_auc),
        testRocAuc: Math.abs(lab.test.rocAuc! - metrics.test.roc_auc),
        testPrAuc: Math.abs(lab.test.prAuc! - metrics.test.pr_auc),
      };
      const labWeights = readSafetensors(adapterPath);
      const cliWeights = readSafetensors(join(out, 'adapter', 'adapter_model.safetensors'));
      expect([...labWeights.keys()].sort()).toEqual([...cliWeights.keys()].sort());
      let weightDiff = 0;
      let squaredDiff = 0;
      let squared = 0;
      for (const [name, values] of labWeights) {
        const other = cliWeights.get(name)!;
        expect(values.length, name).toBe(other.length);
        let scale = 0;
        let diff = 0;
        for (let i = 0; i < values.length; i++) {
          scale = Math.max(scale, Math.abs(other[i]));
          diff = Math.max(diff, Math.abs(values[i] - other[i]));
          squaredDiff += (values[i] - other[i]) ** 2;
          squared += other[i] ** 2;
        }
        weightDiff = Math.max(weightDiff, diff / (scale || 1));
      }
      const weightNormDiff = Math.sqrt(squaredDiff / squared);
      console.log(
        `lab (SwiftShader) ${browserSeconds.toFixed(0)} s vs CLI (lavapipe) ${cliResult.seconds.toFixed(0)} s; ` +
          `${lab.steps} steps, best step ${lab.bestStep}/${metrics.best_step}, threshold ${lab.threshold}/${metrics.valid.threshold}, ` +
          `test ROC AUC ${lab.test.rocAuc}/${metrics.test.roc_auc}, PR AUC ${lab.test.prAuc}/${metrics.test.pr_auc}; ` +
          `largest differences: ${JSON.stringify(diffs)}, adapter weights ${weightDiff.toExponential(2)} (largest element, relative), ${weightNormDiff.toExponential(2)} (norm)`,
      );
      expect(lab.bestStep).toBe(metrics.best_step);
      expect(diffs.loss).toBeLessThanOrEqual(LOSS_TOLERANCE);
      expectSameThreshold(lab.threshold, metrics.valid.threshold, cliValidation.scores);
      const allowed = {
        validationRocAuc: expectRocAucClose(lab.validation.rocAuc!, metrics.valid.roc_auc, {
          ...cliValidation,
          scoreTol: SCORE_TOLERANCE,
          what: 'validation ROC AUC, lab vs CLI',
        }),
        testRocAuc: expectRocAucClose(lab.test.rocAuc!, metrics.test.roc_auc, {
          ...cliTest,
          scoreTol: SCORE_TOLERANCE,
          what: 'test ROC AUC, lab vs CLI',
        }),
        testPrAuc: expectAveragePrecisionClose(lab.test.prAuc!, metrics.test.pr_auc, {
          ...cliTest,
          scoreTol: SCORE_TOLERANCE,
          what: 'test PR AUC, lab vs CLI',
        }),
      };
      console.log(`metric tolerances derived from |Δp| ≤ ${SCORE_TOLERANCE}: ${JSON.stringify(allowed)}`);
      expect(weightDiff).toBeLessThanOrEqual(WEIGHT_TOLERANCE);
      expect(weightNormDiff).toBeLessThanOrEqual(WEIGHT_NORM_TOLERANCE);

      // The detector settings beside the adapter: the same threshold and data settings.
      const labSettings = JSON.parse(readFileSync(settingsPath, 'utf8'));
      const cliSettings = JSON.parse(readFileSync(join(out, 'adapter', 'vulnlab_detector.json'), 'utf8'));
      const { threshold: labThreshold, validation: labValidation, ...labRest } = labSettings;
      const { threshold: cliThreshold, validation: cliSettingsValidation, ...cliRest } = cliSettings;
      expect(labRest).toEqual(cliRest);
      expectSameThreshold(labThreshold, cliThreshold, cliValidation.scores);
      expect(labValidation.n).toBe(cliSettingsValidation.n);

      // The CLI's adapter folder imported in the Scan panel scores Java as `vulnlab scan` does.
      const javaPath = join(dir, 'Scanned.java');
      writeFileSync(javaPath, javaClass());
      const cliScan = runCli([
        'scan',
        '--model',
        'demo',
        '--adapter',
        join(out, 'adapter'),
        javaPath,
        '--json',
      ]);
      await panel(page, 'Scan');
      await page
        .getByTestId('adapter-files-input')
        .setInputFiles(
          ['adapter_config.json', 'adapter_model.safetensors', 'vulnlab_detector.json'].map((f) =>
            join(out, 'adapter', f),
          ),
        );
      await expect
        .poll(() => text(page, 'adapter-imported'), { timeout: 60_000 })
        .toMatch(/Scans use the imported adapter .* flagged/);
      await page.locator('#scan-code').fill(readFileSync(javaPath, 'utf8'));
      await page.getByRole('button', { name: 'Scan', exact: true }).click();
      await expect.poll(() => text(page, 'scan-results'), { timeout: LONG }).toMatch(/imported adapter/);
      const labScores = await page
        .getByTestId('scan-results')
        .locator('tbody tr')
        .evaluateAll((rows) =>
          rows.map((row) => ({
            line: Number(row.querySelector('td')!.textContent),
            probability: Number(row.querySelector('meter')!.getAttribute('value')),
            flagged: row.textContent!.includes('flagged'),
          })),
        );
      const scanned = await cliScan;
      const cliReport = JSON.parse(scanned.stdout) as {
        threshold: number;
        methods: { line: number; probability: number; flagged: boolean }[];
      };
      // scan exits 3 when it flags a method, 0 when it flags none
      const flagged = cliReport.methods.some((m) => m.flagged);
      expect(scanned.code, scanned.output.slice(-2000)).toBe(flagged ? 3 : 0);
      const cliScores = cliReport.methods;
      expect(labScores.map((m) => m.line).sort()).toEqual(cliScores.map((m) => m.line).sort());
      const scanDiff = Math.max(
        ...labScores.map((m) =>
          Math.abs(m.probability - cliScores.find((c) => c.line === m.line)!.probability),
        ),
      );
      console.log(
        `scan of ${labScores.length} methods with the CLI's adapter: largest difference ${scanDiff.toExponential(2)}`,
      );
      expect(scanDiff).toBeLessThanOrEqual(SCORE_TOLERANCE);
      // Both flag at the CLI's threshold (the imported vulnlab_detector.json); a method within
      // SCORE_TOLERANCE of it may land on either side, so only the others must agree.
      const near = new Set(
        nearThreshold(
          cliScores.map((c) => c.probability),
          cliReport.threshold,
          SCORE_TOLERANCE,
        ).map((i) => cliScores[i].line),
      );
      if (near.size)
        console.log(`flags not compared within ${SCORE_TOLERANCE} of the threshold: lines ${[...near]}`);
      for (const m of labScores) {
        if (near.has(m.line)) continue;
        expect(m.flagged, `line ${m.line} flagged (threshold ${cliReport.threshold})`).toBe(
          cliScores.find((c) => c.line === m.line)!.flagged,
        );
      }
      await page.screenshot({ path: `${RESULTS_DIR}/parity-scan-imported.png`, fullPage: true });
      expect(errors).toEqual([]);
    },
    LONG * 2,
  );
});
