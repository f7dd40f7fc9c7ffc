/**
 * Scanning with an exported ONNX detector in Chromium with WebGPU disabled: the Scan panel loads the
 * export (zipped, weights in external data) through onnxruntime-web, says it falls back to WASM, and
 * shows the same per-method probabilities as onnxruntime-node computes for the same code. A file that
 * is no model, or a model without its external data, is refused with the reason.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { unzipSync, zipSync } from 'fflate';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { PreviewServer } from 'vite';
import { extractJavaMethods } from '../../src/data/java.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { detectorTokens } from '../../src/train/onnx/scan.ts';
import {
  exportDetector,
  loadDemo,
  randomAdapter,
  scoreWithOrtNode,
  tempDir,
  writeExport,
} from '../onnx/helpers.ts';
import { launchChromium, RESULTS_DIR, serveBuild } from './browser.ts';

const JAVA = `public class Accounts {
    public ResultSet find(Connection conn, String name) throws SQLException {
        Statement st = conn.createStatement();
        return st.executeQuery("SELECT * FROM accounts WHERE name = '" + name + "'");
    }

    public byte[] read(String file) throws IOException {
        return Files.readAllBytes(Paths.get("/srv/data/" + file));
    }

    public int add(int a, int b) {
        return a + b;
    }
}
`;

describe('the Scan panel with an ONNX detector and WebGPU disabled', () => {
  let browser: Browser;
  let server: PreviewServer;
  let page: Page;
  let dir: string;
  let modelPath: string;
  let zipPath: string;
  let expected: Map<string, number>;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    const demo = await loadDemo();
    const exported = exportDetector(demo.model, randomAdapter(demo.model.config, 31), 'f32', {
      tokenization: { maxTokens: 1023, truncation: 'head', normalize: {}, padId: demo.model.padId },
      threshold: 0.42,
      maxInlineBytes: 64 * 1024,
    });
    dir = tempDir('e2e');
    modelPath = writeExport(exported, dir);
    zipPath = join(dir, 'detector.zip');
    writeFileSync(
      zipPath,
      zipSync(Object.fromEntries(exported.files.map((f) => [`detector/${f.name}`, Buffer.concat(f.chunks)]))),
    );
    // What onnxruntime-node says about the same methods, tokenized the same way.
    const tokenizer = loadTokenizer(readFileSync(join(dir, 'tokenizer.json'), 'utf8'), undefined);
    const extracted = extractJavaMethods(JAVA);
    if (!extracted.ok) throw new Error(extracted.message);
    const rows = extracted.methods.map((m) => detectorTokens(m.code, tokenizer, exported.metadata.tokenizer));
    const scores = await scoreWithOrtNode(modelPath, rows, demo.model.padId);
    expected = new Map(extracted.methods.map((m, i) => [m.name, scores[i].probability]));

    const served = await serveBuild();
    server = served.server;
    browser = await launchChromium({ webgpu: false });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (error) => consoleErrors.push(String(error)));
    await page.goto(served.url);
    await page.getByRole('tab', { name: 'Scan' }).click();
    await page.getByLabel(/ONNX file/).check();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('refuses a file that is not an ONNX model, saying why', async () => {
    const bogus = join(dir, 'notes.onnx');
    writeFileSync(bogus, readFileSync(join(dir, 'tokenizer.json')));
    await page.getByTestId('onnx-files').setInputFiles([bogus, join(dir, 'tokenizer.json')]);
    await page.getByRole('button', { name: 'Load detector' }).click();
    const error = page.getByTestId('onnx-error');
    await error.waitFor({ timeout: 60_000 });
    expect(await error.getAttribute('data-code')).toBe('bad-input');
    expect(await error.innerText()).toMatch(/notes\.onnx .*(corrupted|does not hold an ONNX model)/);
  });

  it('refuses the model without its external data file, naming it', async () => {
    await page.getByTestId('onnx-files').setInputFiles([modelPath, join(dir, 'tokenizer.json')]);
    await page.getByRole('button', { name: 'Load detector' }).click();
    const error = page.getByTestId('onnx-error');
    await expect
      .poll(() => error.innerText(), { timeout: 60_000 })
      .toMatch(/external data file model\.onnx\.data, which was not given/);
  });

  it('loads the zipped export on WASM and says it fell back from WebGPU', async () => {
    await page.getByTestId('onnx-files').setInputFiles([zipPath]);
    await page.getByRole('button', { name: 'Load detector' }).click();
    const status = page.getByTestId('onnx-detector-status');
    await status.waitFor({ timeout: 90_000 });
    expect(await page.getByTestId('onnx-provider').innerText()).toMatch(/WASM/);
    expect(await page.getByTestId('onnx-fallback').innerText()).toMatch(
      // Depending on the flag Chromium drops navigator.gpu or only its adapters.
      /Falling back to WASM: (this browser exposes no WebGPU|the browser has WebGPU but found no GPU adapter)/,
    );
    expect(await status.innerText()).toMatch(/threshold 0\.420/);
  });

  it('scans Java code and shows the probabilities onnxruntime-node computes', async () => {
    await page.locator('#scan-code').fill(JAVA);
    await page.getByRole('button', { name: 'Scan', exact: true }).click();
    const table = page.getByTestId('scan-results');
    await table.waitFor({ timeout: 60_000 });
    const rows = await table.locator('tbody tr').evaluateAll((trs) =>
      trs.map((tr) => ({
        name: tr.querySelector('th')?.textContent ?? '',
        probability: Number(tr.querySelector('meter')?.getAttribute('value')),
      })),
    );
    expect(rows.map((r) => r.name).sort()).toEqual([...expected.keys()].sort());
    for (const row of rows) expect(Math.abs(row.probability - expected.get(row.name)!)).toBeLessThan(1e-5);
    expect(await table.locator('caption').innerText()).toMatch(/3 methods in \d+ ms on WASM/);
    await page.screenshot({ path: `${RESULTS_DIR}/onnx-scan.png`, fullPage: true });
    expect(consoleErrors).toEqual([]);
  });
});

describe('the lab to ONNX and back, on WebGPU (SwiftShader)', () => {
  it('exports a trained run from Results and scans with it on the WebGPU execution provider', async () => {
    const served = await serveBuild();
    const browser = await launchChromium({ webgpu: true });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(String(error)));
      // The shortest classroom demo that finishes a run: tiny packs, stopped after its first evaluation.
      const demo = { epochs: 1, evalEvery: 1, batching: { packLength: 32, packsPerStep: 2 } };
      await page.goto(`${served.url}?demo=${encodeURIComponent(JSON.stringify(demo))}`);
      await page.locator('[data-testid="adapter-line"][data-state="ready"]').waitFor({ timeout: 60_000 });
      await page.getByRole('button', { name: 'Run the classroom demo' }).click();
      await expect
        .poll(
          () =>
            page
              .getByTestId('last-auc')
              .innerText()
              .catch(() => ''),
          { timeout: 240_000, interval: 1000 },
        )
        .toMatch(/ROC AUC \d\.\d{3}/);
      await page.getByRole('button', { name: 'Stop', exact: true }).click();
      await expect
        .poll(() => page.getByTestId('demo-status').getAttribute('data-state'), {
          timeout: 240_000,
          interval: 1000,
        })
        .toBe('done');

      await page.getByRole('tab', { name: 'Results' }).click();
      await page.getByRole('button', { name: 'Export ONNX' }).first().click();
      const links = page.getByTestId('onnx-files-exported').first();
      await links.waitFor({ timeout: 60_000 });
      expect(await links.innerText()).toMatch(/model\.onnx[\s\S]*tokenizer\.json[\s\S]*detector\.json/);
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        links.getByRole('link', { name: /vulnlab-detector-f32\.zip/ }).click(),
      ]);
      const dir = tempDir('e2e-lab');
      const zipPath = join(dir, 'detector.zip');
      await download.saveAs(zipPath);
      const files = unzipSync(new Uint8Array(readFileSync(zipPath)));
      writeFileSync(join(dir, 'model.onnx'), files['model.onnx']);
      const described = JSON.parse(new TextDecoder().decode(files['detector.json']));
      expect(described).toMatchObject({
        weightFormat: 'f32',
        baseModel: 'demo',
        tokenizer: { maxTokens: 31 },
      });
      expect(described.threshold).toBeGreaterThan(0);

      // What onnxruntime-node says about the same methods with the lab's file.
      const tokenizer = loadTokenizer(new TextDecoder().decode(files['tokenizer.json']), undefined);
      const extracted = extractJavaMethods(JAVA);
      if (!extracted.ok) throw new Error(extracted.message);
      const rows = extracted.methods.map((m) => detectorTokens(m.code, tokenizer, described.tokenizer));
      const scores = await scoreWithOrtNode(join(dir, 'model.onnx'), rows, described.tokenizer.padId);
      const expected = new Map(extracted.methods.map((m, i) => [m.name, scores[i].probability]));

      await page.getByRole('tab', { name: 'Scan' }).click();
      await page.getByLabel(/ONNX file/).check();
      await page.getByTestId('onnx-files').setInputFiles([zipPath]);
      await page.getByRole('button', { name: 'Load detector' }).click();
      await page.getByTestId('onnx-detector-status').waitFor({ timeout: 90_000 });
      expect(await page.getByTestId('onnx-provider').innerText()).toMatch(/WebGPU/);
      expect(await page.getByTestId('onnx-fallback').count()).toBe(0);
      await page.locator('#scan-code').fill(JAVA);
      await page.getByRole('button', { name: 'Scan', exact: true }).click();
      const table = page.getByTestId('scan-results');
      await table.waitFor({ timeout: 90_000 });
      const shown = await table.locator('tbody tr').evaluateAll((trs) =>
        trs.map((tr) => ({
          name: tr.querySelector('th')?.textContent ?? '',
          probability: Number(tr.querySelector('meter')?.getAttribute('value')),
        })),
      );
      expect(shown).toHaveLength(expected.size);
      // WebGPU kernels vs ONNX Runtime's CPU kernels: same graph and weights, other summation order.
      for (const row of shown) expect(Math.abs(row.probability - expected.get(row.name)!)).toBeLessThan(1e-4);
      expect(await table.locator('caption').innerText()).toMatch(/on WebGPU/);
      await page.screenshot({ path: `${RESULTS_DIR}/onnx-scan-webgpu.png`, fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      await served.server.close();
    }
  }, 300_000);
});
