import { mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { build, preview, type PreviewServer } from 'vite';

export const RESULTS_DIR = 'test-results';

/**
 * Debian's Chromium with WebGPU on SwiftShader; downloads of playwright browsers are impossible here.
 * `launch()` gives every run a fresh temporary profile (Playwright's own --user-data-dir).
 */
export async function launchChromium({ webgpu = true } = {}): Promise<Browser> {
  mkdirSync(RESULTS_DIR, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      // Without this flag headless Chromium on Linux exposes navigator.gpu but no adapter.
      ...(webgpu ? ['--enable-unsafe-webgpu'] : ['--disable-features=WebGPU']),
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      '--no-first-run',
    ],
  });
}

/** Serves the production build (`dist/`, made by `npm run test:e2e`) on a free localhost port. */
export async function serveBuild(): Promise<{ server: PreviewServer; url: string }> {
  const server = await preview({
    preview: { host: '127.0.0.1', port: 0, strictPort: false },
    logLevel: 'warn',
  });
  const url = server.resolvedUrls?.local[0];
  if (!url) throw new Error('vite preview did not report a local URL');
  return { server, url };
}

/**
 * Builds a test-only page (the index.html and script in `root`, never part of the app) into `outDir`,
 * lets `addFiles(outDir)` put beside it what the page fetches, and serves that folder on a free
 * localhost port.
 */
export async function serveTestPage(
  root: string,
  outDir: string,
  addFiles: (outDir: string) => void,
): Promise<{ server: PreviewServer; url: string }> {
  await build({
    configFile: false,
    root,
    base: './',
    publicDir: false,
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true, target: 'es2022' },
  });
  addFiles(outDir);
  const server = await preview({
    configFile: false,
    root,
    build: { outDir },
    preview: { host: '127.0.0.1', port: 0, strictPort: false },
    logLevel: 'warn',
  });
  const url = server.resolvedUrls?.local[0];
  if (!url) throw new Error('vite preview did not report a local URL');
  return { server, url };
}
