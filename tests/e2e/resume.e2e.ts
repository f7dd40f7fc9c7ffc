import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { PreviewServer } from 'vite';
import { launchChromium, RESULTS_DIR, serveBuild } from './browser.ts';

/**
 * A run cut short by a page reload resumes from its checkpoint in the browser's private storage
 * (OPFS) and ends with exactly the metrics and losses of the same run left alone. SwiftShader runs
 * a step in about a second, so the run is small: 24 training functions, packs of 128 tokens.
 */

const LONG = 240_000;

/** Balanced functions of each split from the demo dataset, with their split field. */
function writeSlice(path: string): void {
  const lines = readFileSync('public/demo/java-vulns.jsonl', 'utf8').trim().split('\n');
  const rows = lines.map((line) => ({ line, row: JSON.parse(line) as { split: string; target: number } }));
  const pick = (split: string, perClass: number) =>
    [1, 0].flatMap((label) =>
      rows
        .filter((r) => r.row.split === split && Number(r.row.target) === label)
        .slice(0, perClass)
        .map((r) => r.line),
    );
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, [...pick('train', 12), ...pick('validation', 6), ...pick('test', 6)].join('\n') + '\n');
}

const CONFIG = {
  weightFormat: 'f32',
  lora: { r: 4 },
  optimizer: { lr: 2e-3 },
  batching: { packLength: 128, packsPerStep: 2 },
  epochs: 1,
  evalEvery: 4,
  checkpointEvery: 2,
  seed: 7,
};

interface ExportedRun {
  id: string;
  name: string;
  steps: number;
  bestStep: number;
  threshold: number;
  validation: { rocAuc: number | null; prAuc: number | null };
  test: { rocAuc: number | null; prAuc: number | null };
  loss: { step: number; loss: number }[];
  evals: { step: number; rocAuc: number | null; loss?: number }[];
}

async function waitForReady(page: Page): Promise<void> {
  await page.locator('[data-testid="adapter-line"][data-state="ready"]').waitFor({ timeout: 60_000 });
}

async function panel(page: Page, name: string): Promise<void> {
  await page.getByRole('tab', { name }).click();
  await expect.poll(() => page.getByRole('tabpanel').locator('h2').innerText()).toBe(name);
}

const text = (page: Page, testId: string) =>
  page
    .getByTestId(testId)
    .innerText()
    .catch(() => '');

/** Opens the lab with the config link, loads the demo model and uploads the slice. */
async function prepare(page: Page, url: string, slice: string): Promise<void> {
  // A fresh document each time (the same URL with a hash would not reload the page).
  await page.goto('about:blank');
  await page.goto(`${url}#config=${encodeURIComponent(JSON.stringify(CONFIG))}`);
  await waitForReady(page);
  await panel(page, 'Model');
  await page.getByRole('button', { name: 'Load the demo model' }).click();
  await expect.poll(() => text(page, 'model-info'), { timeout: 60_000 }).toMatch(/demo/);
  await panel(page, 'Data');
  await page.getByTestId('data-files').setInputFiles(slice);
  await expect.poll(() => text(page, 'data-summary'), { timeout: 60_000 }).toMatch(/48 functions imported/);
  await panel(page, 'Train');
}

async function waitForEnd(page: Page): Promise<void> {
  const state = page.getByTestId('run-state');
  await expect
    .poll(() => state.getAttribute('data-state').catch(() => ''), { timeout: LONG, interval: 1000 })
    .toMatch(/finished|stopped|failed/);
  expect(await state.getAttribute('data-state'), await text(page, 'run-error')).toBe('finished');
}

async function exportMetrics(page: Page, name: string): Promise<ExportedRun[]> {
  await panel(page, 'Results');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Metrics of the compared runs: JSON' }).click(),
  ]);
  const path = join(RESULTS_DIR, name);
  await download.saveAs(path);
  return JSON.parse(readFileSync(path, 'utf8')) as ExportedRun[];
}

/** Folder names under OPFS's vulnlab-runs/ (one per saved run). */
const savedFolders = (page: Page) =>
  page.evaluate(async () => {
    const root = await navigator.storage.getDirectory();
    const runs = await root.getDirectoryHandle('vulnlab-runs', { create: true });
    const names: string[] = [];
    for await (const key of (runs as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(key);
    return names;
  });

/** Waits until the live run has saved a checkpoint at `step` or later. */
async function waitForCheckpoint(page: Page, step: number): Promise<void> {
  await expect
    .poll(
      async () =>
        Number(/Last checkpoint at step (\d+)/.exec(await text(page, 'checkpoint-status'))?.[1] ?? 0),
      { timeout: LONG, interval: 250 },
    )
    .toBeGreaterThanOrEqual(step);
}

/** The validation-loss points the Train panel draws, as [step, loss]. */
async function shownValidationLoss(page: Page): Promise<[number, number][]> {
  const attr = await page.getByTestId('loss-panel').getAttribute('data-validation-loss');
  return JSON.parse(attr ?? '[]') as [number, number][];
}

/** The resumed run must end exactly where the uninterrupted one did (same device, same steps). */
function expectSameRun(resumed: ExportedRun, reference: ExportedRun): void {
  expect(resumed.steps).toBe(reference.steps);
  expect(resumed.bestStep).toBe(reference.bestStep);
  expect(resumed.threshold).toBe(reference.threshold);
  expect(resumed.validation.rocAuc).toBe(reference.validation.rocAuc);
  expect(resumed.test.rocAuc).toBe(reference.test.rocAuc);
  expect(resumed.test.prAuc).toBe(reference.test.prAuc);
  expect(resumed.loss).toEqual(reference.loss);
  // Validation ROC AUC and loss at every evaluation, those before the checkpoint included.
  expect(resumed.evals).toEqual(reference.evals);
  expect(resumed.evals.every((e) => typeof e.loss === 'number')).toBe(true);
}

describe('a run resumed after a page reload or a lost GPU device', () => {
  let reference: ExportedRun;
  let browser: Browser;
  let server: PreviewServer;
  let page: Page;
  let url: string;
  const errors: string[] = [];
  const slice = join(RESULTS_DIR, 'resume-data', 'slice.jsonl');

  beforeAll(async () => {
    writeSlice(slice);
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
    'continues from its checkpoint to the same losses and metrics as an uninterrupted run',
    async () => {
      // 1. The reference: the same run, never interrupted.
      await prepare(page, url, slice);
      await page.getByRole('button', { name: 'Start', exact: true }).click();
      await waitForEnd(page);
      [reference] = await exportMetrics(page, 'resume-reference.json');
      expect(reference.steps).toBeGreaterThanOrEqual(6);
      expect(reference.loss.map((p) => p.step)).toEqual(
        Array.from({ length: reference.steps }, (_, i) => i + 1),
      );
      // A finished run leaves no checkpoint behind.
      expect(await savedFolders(page)).toEqual([]);

      // 2. The same run, cut short by a reload after its second checkpoint.
      await prepare(page, url, slice);
      await page.getByRole('button', { name: 'Start', exact: true }).click();
      await waitForCheckpoint(page, 4);
      // What the page showed before the reload, up to the checkpoint at step 4 (evaluated at 4).
      const shownBefore = (await shownValidationLoss(page)).filter(([step]) => step <= 4);
      expect(shownBefore.map(([step]) => step)).toEqual([4]);
      await page.reload();
      await waitForReady(page);
      await panel(page, 'Train');
      const entry = page.getByTestId('saved-run');
      await expect
        .poll(() => entry.innerText().catch(() => ''), { timeout: 30_000 })
        .toMatch(/stopped at step \d+/);
      const stoppedAt = Number(/stopped at step (\d+)/.exec(await entry.innerText())![1]);
      expect(stoppedAt).toBeGreaterThanOrEqual(4);
      expect(stoppedAt).toBeLessThan(reference.steps);
      await page.screenshot({ path: `${RESULTS_DIR}/resume-offered.png`, fullPage: true });
      // The Model panel accounts for the checkpoint in the site's storage.
      await panel(page, 'Model');
      await expect
        .poll(() => text(page, 'storage-usage'), { timeout: 30_000 })
        .toMatch(/This site uses .* of .*checkpoints of interrupted runs take \d/);
      await panel(page, 'Train');

      // 3. Resume: the model is loaded again by itself; the charts go on from the saved step.
      await entry.getByRole('button', { name: /^Resume .* from step \d+$/ }).click();
      await expect
        .poll(() => text(page, 'run-state'), { timeout: LONG, interval: 500 })
        .toMatch(/resumed at step|step \d+/);
      await waitForEnd(page);
      expect(await page.getByTestId('loss-chart').innerText()).toContain('resumed');
      // The resumed run's history goes back to step 1: validation loss before the checkpoint included.
      const shownAfter = await shownValidationLoss(page);
      expect(shownAfter.filter(([step]) => step <= 4)).toEqual(shownBefore);
      expect(shownAfter.map(([step]) => step)).toEqual(reference.evals.map((e) => e.step));
      await page.screenshot({ path: `${RESULTS_DIR}/resume-finished.png`, fullPage: true });
      const runs = await exportMetrics(page, 'resume-resumed.json');
      const resumed = runs.find((r) => r.id !== reference.id)!;
      expect(resumed).toBeDefined();
      // Same device, same order of operations: bit for bit, before and after the reload.
      expectSameRun(resumed, reference);
      // The resumed run's checkpoint is gone once it finished; nothing is offered after a reload.
      expect(await savedFolders(page)).toEqual([]);
      await page.reload();
      await waitForReady(page);
      await panel(page, 'Train');
      expect(await page.getByTestId('saved-runs').count()).toBe(0);
      expect(errors).toEqual([]);
    },
    LONG * 3,
  );

  it(
    'after the GPU process crashes, offers to resume from the last checkpoint and ends the same',
    async () => {
      expect(reference, 'needs the reference run of the test above').toBeDefined();
      await prepare(page, url, slice);
      await page.getByRole('button', { name: 'Start', exact: true }).click();
      await waitForCheckpoint(page, 2);
      // A real device loss: Chromium's GPU process dies, as on a driver reset.
      const cdp = await browser.newBrowserCDPSession();
      await cdp.send('Browser.crashGpuProcess');
      const error = page.getByTestId('run-error');
      await expect
        .poll(() => error.getAttribute('data-code').catch(() => ''), { timeout: LONG })
        .toBe('device-lost');
      const resume = error.getByRole('button', { name: /^Resume from the last checkpoint \(step \d+\)$/ });
      await resume.waitFor({ timeout: 30_000 });
      // Chromium cannot capture the page until its GPU process is back: retry the screenshot until it can.
      await expect
        .poll(
          () =>
            page.screenshot({ path: `${RESULTS_DIR}/resume-device-lost.png`, fullPage: true }).then(
              () => true,
              () => false,
            ),
          { timeout: 60_000, interval: 1000 },
        )
        .toBe(true);
      await resume.click();
      await waitForEnd(page);
      const runs = await exportMetrics(page, 'resume-device-lost.json');
      const resumed = runs[runs.length - 1];
      expect(resumed.id).not.toBe(reference.id);
      expectSameRun(resumed, reference);
      expect(await savedFolders(page)).toEqual([]);
      expect(errors).toEqual([]);
    },
    LONG * 2,
  );

  it(
    'with browser storage full, says checkpoints are off and the run goes on (on a split chosen by hand)',
    async () => {
      await prepare(page, url, slice);
      // The Data panel: the file's columns for manual mapping, and a split chosen by hand.
      await panel(page, 'Data');
      expect(await text(page, 'columns')).toMatch(/code, target, cwe, project, split/);
      expect(await text(page, 'split-explanation')).toMatch(/split column/);
      const options = page.getByRole('form', { name: 'Split options' });
      await options.getByLabel('Split strategy').selectOption('stratified');
      await options.getByLabel('train share (%)').fill('50');
      await options.getByLabel('validation share (%)').fill('25');
      await options.getByLabel('test share (%)').fill('25');
      await options.getByLabel('Split seed').fill('3');
      await options.getByRole('button', { name: 'Apply the split' }).click();
      await expect.poll(() => text(page, 'split-explanation')).toMatch(/stratified with seed 3, chosen here/);
      const rows = await page.getByTestId('splits').locator('tbody tr').allInnerTexts();
      expect(rows.map((r) => Number(r.split(/\s+/)[1]))).toEqual([24, 12, 12]);
      await page.screenshot({ path: `${RESULTS_DIR}/resume-data-split.png`, fullPage: true });
      await panel(page, 'Train');
      // This origin may now store 20 kB: the first checkpoint (data + tensors) does not fit.
      const cdp = await page.context().newCDPSession(page);
      const origin = new URL(url).origin;
      await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 20_000 });
      try {
        await page.getByRole('button', { name: 'Start', exact: true }).click();
        const off = page.getByTestId('checkpoints-off');
        await expect
          .poll(() => off.innerText().catch(() => ''), { timeout: LONG })
          .toMatch(/storage is full/);
        expect(await off.innerText()).toMatch(/The run goes on/);
        const stepNow = async () => Number(/step (\d+)/.exec(await text(page, 'run-state'))?.[1] ?? 0);
        const at = await stepNow();
        await expect.poll(stepNow, { timeout: LONG, interval: 500 }).toBeGreaterThan(at);
        await page.screenshot({ path: `${RESULTS_DIR}/resume-storage-full.png`, fullPage: true });
        await page.getByRole('button', { name: 'Stop', exact: true }).click();
        const state = page.getByTestId('run-state');
        await expect
          .poll(() => state.getAttribute('data-state'), { timeout: LONG, interval: 1000 })
          .toBe('stopped');
        await expect.poll(() => text(page, 'final-metrics'), { timeout: LONG }).toMatch(/Test ROC AUC/);
      } finally {
        await cdp.send('Storage.overrideQuotaForOrigin', { origin });
      }
      // Nothing half-written is offered for resuming.
      await page.reload();
      await waitForReady(page);
      await panel(page, 'Train');
      expect(await page.getByTestId('saved-runs').count()).toBe(0);
      expect(errors).toEqual([]);
    },
    LONG * 2,
  );
});
