import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { PreviewServer } from 'vite';
import { launchChromium, RESULTS_DIR, serveBuild } from './browser.ts';

/**
 * The ablations button: three runs back to back (packed/padded × focal/CE) shown side by side. On
 * SwiftShader each run is stopped after its first step; the comparison mechanics are what is tested.
 */
describe('the ablations side by side', () => {
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
    const demo = { epochs: 1, evalEvery: 0, batching: { packLength: 64, packsPerStep: 4 } };
    await page.goto(`${served.url}?demo=${encodeURIComponent(JSON.stringify(demo))}`);
    await page.locator('[data-testid="adapter-line"][data-state="ready"]').waitFor({ timeout: 60_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('runs packed vs padded and focal vs cross-entropy and compares them', async () => {
    await page.getByRole('button', { name: /Run the ablations/ }).click();
    const table = page.getByTestId('ablation');
    const labels = [
      'packed sequences · focal loss',
      'padded (one function per row) · focal loss',
      'packed sequences · cross-entropy',
    ];
    for (const label of labels) {
      const row = table.getByRole('row').filter({ hasText: label });
      await expect.poll(() => row.innerText(), { timeout: 120_000, interval: 500 }).toMatch(/training/);
      const state = page.getByTestId('run-state');
      await expect
        .poll(() => state.innerText().catch(() => ''), { timeout: 120_000, interval: 500 })
        .toMatch(new RegExp(`ablation · ${label.replace(/[()]/g, '\\$&')}[\\s\\S]*step [1-9]`));
      await page.getByRole('button', { name: 'Stop', exact: true }).click();
      await expect.poll(() => row.innerText(), { timeout: 120_000, interval: 1000 }).toMatch(/done|failed/);
      expect(await row.innerText()).toMatch(/done/);
    }
    const legend = page.getByTestId('ablation-roc').locator('.recharts-legend-item');
    await expect.poll(() => legend.count()).toBe(3);
    expect(await table.innerText()).toMatch(/Packing vs padding/);
    await page.screenshot({ path: `${RESULTS_DIR}/lab-ablation.png`, fullPage: true });
    expect(errors).toEqual([]);
  }, 420_000);
});
