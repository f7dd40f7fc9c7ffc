import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { PreviewServer } from 'vite';
import { launchChromium, RESULTS_DIR, serveBuild } from './browser.ts';

/**
 * The lab end to end on SwiftShader: configs are kept tiny (SwiftShader runs a step in seconds, not
 * milliseconds), passed through the demo's `?demo=` override and the shareable `#config=` link.
 */

const LONG = 280_000;

/** Small labelled Java functions: half vulnerable (string-built SQL, unchecked paths), half safe. */
function javaFunctions(count: number, offset: number): { code: string; label: 0 | 1; cwe: string }[] {
  return Array.from({ length: count }, (_, k) => {
    const i = k + offset;
    const name = `handler${i}`;
    if (i % 2 === 0) {
      return i % 4 === 0
        ? {
            code: `public ResultSet ${name}(Connection c, String id) throws SQLException {\n    Statement s = c.createStatement();\n    return s.executeQuery("SELECT * FROM t${i} WHERE id = '" + id + "'");\n}`,
            label: 1,
            cwe: 'CWE-89',
          }
        : {
            code: `public byte[] ${name}(String file) throws IOException {\n    return Files.readAllBytes(Paths.get("/srv/data${i}/" + file));\n}`,
            label: 1,
            cwe: 'CWE-22',
          };
    }
    return i % 4 === 1
      ? {
          code: `public ResultSet ${name}(Connection c, String id) throws SQLException {\n    PreparedStatement p = c.prepareStatement("SELECT * FROM t${i} WHERE id = ?");\n    p.setString(1, id);\n    return p.executeQuery();\n}`,
          label: 0,
          cwe: 'CWE-89',
        }
      : {
          code: `public int ${name}(int a, int b) {\n    int sum = a + b * ${i};\n    return Math.max(sum, 0);\n}`,
          label: 0,
          cwe: 'CWE-22',
        };
  });
}

const csvQuote = (s: string) => `"${s.replace(/"/g, '""')}"`;

function writeDatasets(dir: string): { jsonl: string; csv: string; broken: string } {
  mkdirSync(dir, { recursive: true });
  const jsonl = join(dir, 'functions.jsonl');
  writeFileSync(
    jsonl,
    javaFunctions(32, 0)
      .map((r) => JSON.stringify({ func: r.code, target: r.label, cwe: r.cwe }))
      .join('\n') + '\n',
  );
  const csv = join(dir, 'more-functions.csv');
  writeFileSync(
    csv,
    'code,vulnerable,cwe_id\n' +
      javaFunctions(32, 32)
        .map((r) => `${csvQuote(r.code)},${r.label ? 'true' : 'false'},${r.cwe}`)
        .join('\n') +
      '\n',
  );
  const broken = join(dir, 'broken.jsonl');
  writeFileSync(
    broken,
    '{"func": "public void a() {}", "target": \n{not json at all\n\u0000\u0001garbage"\n',
  );
  return { jsonl, csv, broken };
}

/** A safetensors file: 8-byte little-endian header length, then a JSON header naming every tensor. */
function parseSafetensors(
  bytes: Buffer,
): Record<string, { dtype: string; shape: number[]; data_offsets: number[] }> {
  const length = Number(bytes.readBigUInt64LE(0));
  expect(length).toBeGreaterThan(2);
  expect(8 + length).toBeLessThanOrEqual(bytes.length);
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Record<string, unknown>;
  delete header.__metadata__;
  const tensors = header as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
  const end = Math.max(...Object.values(tensors).map((t) => t.data_offsets[1]));
  expect(8 + length + end).toBe(bytes.length);
  return tensors;
}

async function waitForReady(page: Page): Promise<void> {
  await page.locator('[data-testid="adapter-line"][data-state="ready"]').waitFor({ timeout: 60_000 });
}

async function panel(page: Page, name: string): Promise<void> {
  await page.getByRole('tab', { name }).click();
  await expect.poll(() => page.getByRole('tabpanel').locator('h2').innerText()).toBe(name);
}

describe('the classroom demo', () => {
  let browser: Browser;
  let server: PreviewServer;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    const served = await serveBuild();
    server = served.server;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    page.on('pageerror', (error) => errors.push(String(error)));
    // A short demo for SwiftShader (its cost grows with tokens): short packs, an evaluation every 2 steps.
    const demo = { epochs: 1, evalEvery: 2, batching: { packLength: 64, packsPerStep: 4 } };
    await page.goto(`${served.url}?demo=${encodeURIComponent(JSON.stringify(demo))}`);
    await waitForReady(page);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it(
    'runs with one click and the ROC chart shows an AUC in its legend',
    async () => {
      await page.getByRole('button', { name: 'Run the classroom demo' }).click();
      const legend = page.getByTestId('roc-chart').locator('.recharts-legend-wrapper');
      await expect
        .poll(() => legend.innerText().catch(() => ''), { timeout: LONG, interval: 2000 })
        .toMatch(/AUC \d\.\d{3}/);
      expect(await page.getByTestId('last-auc').innerText()).toMatch(/validation ROC AUC \d\.\d{3}/);
      await page.screenshot({ path: `${RESULTS_DIR}/lab-train-demo.png`, fullPage: true });
      // Enough for the class: stop, and the run is scored and kept.
      await page.getByRole('button', { name: 'Stop', exact: true }).click();
      await expect
        .poll(() => page.getByTestId('demo-status').getAttribute('data-state'), {
          timeout: LONG,
          interval: 2000,
        })
        .toMatch(/done|failed/);
      expect(await page.getByTestId('demo-status').getAttribute('data-state')).toBe('done');
      await expect
        .poll(() => page.getByTestId('final-metrics').innerText())
        .toMatch(/Test\s+ROC AUC \d\.\d{3}/);
      await page.screenshot({ path: `${RESULTS_DIR}/lab-train-finished.png`, fullPage: true });
      await panel(page, 'Results');
      await expect.poll(() => page.getByTestId('runs-table').innerText()).toMatch(/classroom demo/);
      await expect
        .poll(() => page.getByTestId('results-roc').locator('.recharts-legend-wrapper').innerText())
        .toMatch(/AUC \d\.\d{3}/);
      expect(await page.getByTestId('metrics-table').innerText()).toMatch(/\[\d\.\d{3}, \d\.\d{3}\]/);
      await page.screenshot({ path: `${RESULTS_DIR}/lab-results.png`, fullPage: true });
      // The overlay chart as a standalone SVG file, legend included.
      const [svg] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'ROC (test): SVG' }).click(),
      ]);
      const svgPath = join(RESULTS_DIR, 'roc-test.svg');
      await svg.saveAs(svgPath);
      const svgText = readFileSync(svgPath, 'utf8');
      expect(svgText).toMatch(/^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      expect(svgText).toMatch(/AUC \d\.\d{3}/);
      const [png] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'ROC (test): PNG' }).click(),
      ]);
      const pngPath = join(RESULTS_DIR, 'roc-test.png');
      await png.saveAs(pngPath);
      expect(readFileSync(pngPath).subarray(1, 4).toString('latin1')).toBe('PNG');
      // Projector mode: large type and the dark theme.
      await page.getByLabel('Large type').check();
      await page.getByLabel('Theme').selectOption('dark');
      await page.screenshot({ path: `${RESULTS_DIR}/lab-results-large-dark.png`, fullPage: true });
      // Runs survive a reload.
      await page.reload();
      await panel(page, 'Results');
      await expect.poll(() => page.getByTestId('runs-table').innerText()).toMatch(/classroom demo/);
      expect(errors).toEqual([]);
    },
    LONG * 2,
  );
});

describe('your own data, trained and exported, on this machine only', () => {
  let browser: Browser;
  let server: PreviewServer;
  let page: Page;
  let url: string;
  const offsite: string[] = [];
  const errors: string[] = [];
  const files = writeDatasets(join(RESULTS_DIR, 'lab-data'));

  beforeAll(async () => {
    const served = await serveBuild();
    server = served.server;
    url = served.url;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    page.on('pageerror', (error) => errors.push(String(error)));
    page.on('request', (request) => {
      const u = new URL(request.url());
      const local =
        u.protocol === 'data:' ||
        u.protocol === 'blob:' ||
        ((u.protocol === 'http:' || u.protocol === 'https:') &&
          ['127.0.0.1', 'localhost'].includes(u.hostname));
      if (!local) offsite.push(request.url());
    });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('shows a malformed file as an error and keeps working', async () => {
    await page.goto(url);
    await waitForReady(page);
    await panel(page, 'Data');
    await page.getByTestId('data-files').setInputFiles(files.broken);
    const error = page.getByTestId('data-error');
    await expect.poll(() => error.innerText().catch(() => ''), { timeout: 60_000 }).toMatch(/\S/);
    expect(await error.innerText()).toMatch(/What to do/);
    await page.screenshot({ path: `${RESULTS_DIR}/lab-data-error.png`, fullPage: true });
    // The rest of the app still works: another panel, then a good import.
    await panel(page, 'Model');
    await panel(page, 'Data');
    await page.getByRole('button', { name: 'Use the demo dataset', exact: true }).click();
    await expect
      .poll(
        () =>
          page
            .getByTestId('data-summary')
            .innerText()
            .catch(() => ''),
        { timeout: 60_000 },
      )
      .toMatch(/demo dataset.*\d+ functions imported/);
    expect(errors).toEqual([]);
  });

  it(
    'imports JSONL + CSV, trains, pauses, changes lr, resumes and exports a PEFT adapter',
    async () => {
      const config = {
        weightFormat: 'f32',
        optimizer: { lr: 1e-3 },
        batching: { packLength: 128, packsPerStep: 4 },
        epochs: 1,
        evalEvery: 0,
      };
      await page.goto(`${url}#config=${encodeURIComponent(JSON.stringify(config))}`);
      await waitForReady(page);
      // The shared link pre-filled the Train panel.
      await expect.poll(() => page.getByRole('tabpanel').locator('h2').innerText()).toBe('Train');
      expect(Number(await page.locator('#field-optimizer-lr').inputValue())).toBe(1e-3);

      await panel(page, 'Model');
      await page.getByRole('button', { name: 'Load the demo model' }).click();
      await expect
        .poll(
          () =>
            page
              .getByTestId('model-info')
              .innerText()
              .catch(() => ''),
          { timeout: 60_000 },
        )
        .toMatch(/demo/);
      await page.screenshot({ path: `${RESULTS_DIR}/lab-model.png`, fullPage: true });

      await panel(page, 'Data');
      await page.getByTestId('data-files').setInputFiles([files.jsonl, files.csv]);
      await expect
        .poll(
          () =>
            page
              .getByTestId('data-summary')
              .innerText()
              .catch(() => ''),
          { timeout: 60_000 },
        )
        .toMatch(/64 functions imported/);
      expect(await page.getByTestId('mapping-code').innerText()).toMatch(/func|code/);
      expect(await page.getByTestId('mapping-label').innerText()).toMatch(/target|vulnerable/);
      const preview = page.getByTestId('preview');
      expect(await preview.innerText()).toContain('executeQuery');
      // Code is shown as text, never parsed as HTML.
      expect(
        await preview
          .locator('pre.code')
          .first()
          .evaluate((el) => el.children.length),
      ).toBe(0);
      expect(await page.getByTestId('splits').innerText()).toMatch(/validation/);
      await page.screenshot({ path: `${RESULTS_DIR}/lab-data.png`, fullPage: true });

      await panel(page, 'Train');
      await page.getByRole('button', { name: 'Start', exact: true }).click();
      const state = page.getByTestId('run-state');
      await expect
        .poll(() => state.innerText().catch(() => ''), { timeout: LONG, interval: 1000 })
        .toMatch(/step \d+/);
      await page.getByRole('button', { name: 'Pause', exact: true }).click();
      await expect
        .poll(() => state.getAttribute('data-state'), { timeout: LONG, interval: 1000 })
        .toBe('paused');
      const lr = page.locator('#field-optimizer-lr');
      await lr.fill('5e-4');
      await lr.press('Enter');
      await expect.poll(() => page.locator('.field[data-path="optimizer.lr"] [role=alert]').count()).toBe(0);
      await page.getByRole('button', { name: 'Resume', exact: true }).click();
      // The change is marked on the charts at the step it took effect.
      await expect
        .poll(
          () =>
            page
              .getByTestId('loss-chart')
              .innerText()
              .catch(() => ''),
          { timeout: LONG, interval: 1000 },
        )
        .toContain('lr → 5e-4');
      await page.screenshot({ path: `${RESULTS_DIR}/lab-train-live.png`, fullPage: true });
      await expect
        .poll(() => state.getAttribute('data-state'), { timeout: LONG, interval: 2000 })
        .toMatch(/finished|stopped|failed/);
      expect(await state.getAttribute('data-state')).toBe('finished');

      await panel(page, 'Results');
      await page.getByRole('button', { name: /Export the PEFT adapter/ }).click();
      const link = page.getByTestId('adapter-files').getByRole('link', { name: 'adapter_model.safetensors' });
      await link.waitFor({ timeout: 60_000 });
      const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
      expect(download.suggestedFilename()).toBe('adapter_model.safetensors');
      const path = join(RESULTS_DIR, 'adapter_model.safetensors');
      await download.saveAs(path);
      const tensors = parseSafetensors(readFileSync(path));
      const keys = Object.keys(tensors);
      expect(keys.some((k) => /^base_model\.model\..*lora_A\.weight$/.test(k))).toBe(true);
      expect(keys.some((k) => /^base_model\.model\..*lora_B\.weight$/.test(k))).toBe(true);
      expect(keys.some((k) => /^base_model\.model\..*score\.weight$/.test(k))).toBe(true);
      await page.screenshot({ path: `${RESULTS_DIR}/lab-results-export.png`, fullPage: true });

      await panel(page, 'Scan');
      await page.getByRole('button', { name: 'Paste an example' }).click();
      await page.getByRole('button', { name: 'Scan', exact: true }).click();
      await expect
        .poll(
          () =>
            page
              .getByTestId('scan-results')
              .innerText()
              .catch(() => ''),
          { timeout: LONG, interval: 1000 },
        )
        .toMatch(/findSafely/);
      await page.screenshot({ path: `${RESULTS_DIR}/lab-scan.png`, fullPage: true });
      expect(errors).toEqual([]);
    },
    LONG * 3,
  );

  it('sent no request off this machine while the data was loaded and trained on', () => {
    expect(offsite).toEqual([]);
  });
});
