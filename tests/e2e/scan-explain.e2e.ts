/**
 * The Scan panel's attributions on SwiftShader: with the demo model and the PEFT fixture adapter
 * imported, one short pasted method is scanned and its heat-map appears (code as text nodes with
 * inline backgrounds, at least one top line marked, the top lines listed), for gradient × input and,
 * after the toggle, integrated gradients.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { PreviewServer } from 'vite';
import { launchChromium, RESULTS_DIR, serveBuild } from './browser.ts';

const LONG = 280_000;
const ADAPTER = fileURLToPath(new URL('../fixtures/peft/adapter/', import.meta.url));

const METHOD = `public ResultSet find(Connection c, String id) throws SQLException {
    Statement s = c.createStatement(); // <b>not HTML</b>
    return s.executeQuery("SELECT * FROM t WHERE id = '" + id + "'");
}`;

const text = (page: Page, id: string) =>
  page
    .getByTestId(id)
    .first()
    .innerText()
    .catch(() => '');

describe('the Scan panel explains a pasted method', () => {
  let browser: Browser;
  let server: PreviewServer;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    const served = await serveBuild();
    server = served.server;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (error) => errors.push(String(error)));
    await page.goto(served.url);
    await page.locator('[data-testid="adapter-line"][data-state="ready"]').waitFor({ timeout: 60_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it(
    'shows a heat-map with top lines, for both attribution methods',
    async () => {
      let t = performance.now();
      const lap = (label: string) => {
        console.log(`${label}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
        t = performance.now();
      };
      await page.getByRole('tab', { name: 'Model' }).click();
      await page.getByRole('button', { name: 'Load the demo model' }).click();
      await expect.poll(() => text(page, 'model-info'), { timeout: 60_000 }).toMatch(/demo/);
      lap('model');
      await page.getByRole('tab', { name: 'Scan' }).click();
      await page
        .getByTestId('adapter-files-input')
        .setInputFiles(['adapter_config.json', 'adapter_model.safetensors'].map((f) => ADAPTER + f));
      await expect
        .poll(() => text(page, 'adapter-imported'), { timeout: 60_000 })
        .toMatch(/imported adapter/);
      lap('adapter');
      await page.locator('#scan-code').fill(METHOD);
      await page.getByRole('button', { name: 'Scan', exact: true }).click();
      await expect.poll(() => text(page, 'scan-results'), { timeout: LONG }).toMatch(/find/);
      lap('scan');

      const heatmap = page.getByTestId('heatmap');
      await heatmap.waitFor({ timeout: LONG });
      lap('gradient × input');
      expect(await heatmap.locator('[data-top="true"]').count()).toBeGreaterThanOrEqual(1);
      expect(await page.getByTestId('top-lines').locator('li').first().innerText()).toMatch(
        /^line [1-4]: \d+% — \S/,
      );
      // The code as text: the comment's markup is shown, not parsed; tokens carry inline backgrounds.
      const code = heatmap.locator('.heatmap-code');
      expect(await code.innerText()).toContain('<b>not HTML</b>');
      expect(await code.locator('b').count()).toBe(0);
      expect(await code.locator('.heatmap-text span[style*="background"]').count()).toBeGreaterThan(0);
      await page.screenshot({ path: `${RESULTS_DIR}/scan-explain-grad.png`, fullPage: true });

      await page.getByLabel('integrated gradients').check();
      await expect
        .poll(() => text(page, 'scan-explain'), { timeout: LONG, interval: 1000 })
        .toMatch(/integrated gradients \(\d+ steps\) in/);
      lap('integrated gradients');
      expect(await heatmap.locator('[data-top="true"]').count()).toBeGreaterThanOrEqual(1);
      await page.screenshot({ path: `${RESULTS_DIR}/scan-explain-ig.png`, fullPage: true });

      const [svg] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'find heat-map: SVG' }).click(),
      ]);
      const svgPath = `${RESULTS_DIR}/heatmap-find.svg`;
      await svg.saveAs(svgPath);
      const svgText = readFileSync(svgPath, 'utf8');
      expect(svgText).toMatch(/^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      // The comment's markup escaped (tokens are separate text elements).
      expect(svgText).toContain('&lt;');
      expect(svgText).not.toContain('<b>');
      const [png] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'find heat-map: PNG' }).click(),
      ]);
      const pngPath = `${RESULTS_DIR}/heatmap-find.png`;
      await png.saveAs(pngPath);
      expect(readFileSync(pngPath).subarray(1, 4).toString('latin1')).toBe('PNG');
      expect(await page.getByTestId('explain-error').count()).toBe(0);
      expect(errors).toEqual([]);
    },
    LONG * 2,
  );
});
