import { defineConfig } from 'vitest/config';

// GPU tests run for real on the Node WebGPU adapter (Dawn + lavapipe). Forks keep each file's
// Dawn instance in its own process; two workers match CI's two cores.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    exclude: ['tests/e2e/**', 'node_modules/**'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
