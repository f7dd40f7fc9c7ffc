/**
 * Test-only page (built and served by tests/e2e/golden-parity.e2e.ts, never part of the app): fetches
 * the PyTorch golden fixtures (tests/fixtures/engine/*.json, copied beside the page by the test) and
 * runs the shared golden parity check (tests/helpers/golden-parity.ts) for each fixture on each kernel
 * set, on the browser's WebGPU adapter, returning the reports.
 */
import type { KernelSet } from '../../../src/engine/gpu/context.ts';
import { createBrowserContext } from '../../../src/engine/gpu/browser.ts';
import { parseGoldenCase } from '../../../src/engine/model/golden.ts';
import { goldenParity, type GoldenParityReport } from '../../helpers/golden-parity.ts';

export interface PageReport {
  adapter: string;
  /** The kernel set the adapter gets by default (before each case assigns its own). */
  defaultKernels: KernelSet;
  reports: GoldenParityReport[];
  /** Buffers the checks left on the GPU (every model, step and optimizer is destroyed: 0). */
  leakedBuffers: number;
  ms: number;
}

async function goldenParityCheck(fixtures: string[], kernelSets: KernelSet[]): Promise<PageReport> {
  const t0 = performance.now();
  const cases = await Promise.all(
    fixtures.map(async (url) => {
      const res = await fetch(new URL(url, location.href));
      if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
      return parseGoldenCase(await res.json());
    }),
  );
  const ctx = await createBrowserContext();
  try {
    const before = ctx.liveBuffers.count;
    const reports: GoldenParityReport[] = [];
    for (const kernels of kernelSets)
      for (const gc of cases) reports.push(await goldenParity(ctx, gc, kernels));
    return {
      adapter: [ctx.adapter.vendor, ctx.adapter.architecture, ctx.adapter.description]
        .filter(Boolean)
        .join(' '),
      defaultKernels: ctx.kernels,
      reports,
      leakedBuffers: ctx.liveBuffers.count - before,
      ms: performance.now() - t0,
    };
  } finally {
    ctx.destroy();
  }
}

(window as unknown as { goldenParityCheck: typeof goldenParityCheck }).goldenParityCheck = goldenParityCheck;
document.body.dataset.ready = 'true';
