import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { PreviewServer } from 'vite';
import { launchChromium, RESULTS_DIR, serveBuild } from './browser.ts';

describe('the lab shell in headless Chromium', () => {
  let browser: Browser;
  let server: PreviewServer;
  let page: Page;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    const served = await serveBuild();
    server = served.server;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => consoleErrors.push(String(error)));
    await page.goto(served.url);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('names a real WebGPU adapter in the status line', async () => {
    const line = page.getByTestId('adapter-line');
    await expect.poll(() => line.getAttribute('data-state'), { timeout: 60_000 }).toBe('ready');
    const name = await page.getByTestId('adapter-name').innerText();
    expect(name).toMatch(/^WebGPU: \S/);
    expect(name).not.toContain('unnamed adapter');
    expect(await line.innerText()).toMatch(/storage binding \d+ MiB/);
    // SwiftShader is CPU-backed: the barrier-free kernels are its default.
    expect(await page.getByTestId('kernels').innerText()).toBe('kernels: cpu (default)');
  });

  it('runs a matmul kernel in the page and checks it against the CPU reference', async () => {
    const selftest = page.getByTestId('selftest');
    await expect
      .poll(() => selftest.innerText(), { timeout: 120_000 })
      .toMatch(/kernel check (passed|FAILED)/);
    expect(await selftest.innerText()).toMatch(/kernel check passed: matmul 33x17x65/);
  });

  it('takes the kernel set from ?kernels= and shows it in the status line', async () => {
    const other = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    other.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    other.on('pageerror', (error) => consoleErrors.push(String(error)));
    try {
      await other.goto(new URL('?kernels=gpu', page.url()).toString());
      const line = other.getByTestId('adapter-line');
      await expect.poll(() => line.getAttribute('data-state'), { timeout: 60_000 }).toBe('ready');
      expect(await other.getByTestId('kernels').innerText()).toBe('kernels: gpu (?kernels=gpu)');
      // The tiled kernels pass the same check on the software adapter.
      await expect
        .poll(() => other.getByTestId('selftest').innerText(), { timeout: 120_000 })
        .toMatch(/kernel check passed: matmul 33x17x65/);
    } finally {
      await other.close();
    }
  });

  it('switches panels with the keyboard and keeps working', async () => {
    await page.getByRole('tab', { name: 'Model' }).focus();
    await page.keyboard.press('ArrowRight');
    await expect
      .poll(() => page.getByRole('tab', { name: 'Data' }).getAttribute('aria-selected'))
      .toBe('true');
    await expect.poll(() => page.getByRole('tabpanel').locator('h2').innerText()).toBe('Data');
    await page.getByRole('tab', { name: 'Model' }).click();
    await page.screenshot({ path: `${RESULTS_DIR}/shell.png`, fullPage: true });
    expect(consoleErrors).toEqual([]);
  });
});

describe('the lab without WebGPU', () => {
  it('explains what to do instead of failing silently', async () => {
    const { server, url } = await serveBuild();
    const browser = await launchChromium({ webgpu: false });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
      await page.goto(url);
      const line = page.getByTestId('adapter-line');
      await expect.poll(() => line.getAttribute('data-state'), { timeout: 60_000 }).toBe('unavailable');
      expect(await line.innerText()).toMatch(/No WebGPU[\s\S]*Chrome/);
      // The rest of the lab still works.
      await page.getByRole('tab', { name: 'Scan' }).click();
      await expect.poll(() => page.getByRole('tabpanel').locator('h2').innerText()).toBe('Scan');
      await page.screenshot({ path: `${RESULTS_DIR}/no-webgpu.png` });
    } finally {
      await browser.close();
      await server.close();
    }
  });
});
