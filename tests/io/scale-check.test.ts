import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runScaleCheck, writeRandomCheckpoint } from '../../src/io/node-scale-check.ts';
import { NodeDirModelFiles } from '../../src/io/node-files.ts';
import { loadModel } from '../../src/io/load.ts';
import { findPreset } from '../../src/io/presets.ts';

const dir = mkdtempSync(join(tmpdir(), 'vulnlab-scale-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('scale check (small shapes)', () => {
  it('writes a loadable random F16 checkpoint with the preset shapes', async () => {
    // tiny_starcoder_py's layout with fewer layers and a smaller vocabulary keeps the test small.
    const D = 768;
    const config = {
      ...findPreset('bigcode/tiny_starcoder_py')!.config,
      n_layer: 3,
      vocab_size: 4096,
      n_positions: 256,
    };
    const size = await writeRandomCheckpoint(join(dir, 'm'), config, 3);
    const perLayer = (D + 128) * D + D * D + 2 * D * 3072 + (D + 128) + D + 3072 + D + 4 * D;
    const values = (4096 + 256) * D + 3 * perLayer + 2 * D;
    expect(size).toBeGreaterThan(2 * values);
    expect(size).toBeLessThan(2 * values + 16_384);
    let n = 0;
    const m = await loadModel(new NodeDirModelFiles(join(dir, 'm')), {
      weightFormat: 'q4_0',
      skipTokenizer: true,
      sink: async () => void n++,
    });
    expect(m.config).toMatchObject({ n_layer: 3 });
    expect(n).toBe(2 + 3 * 12 + 2);
  });

  it.each(['f32', 'f16', 'q8_0', 'q4_0'] as const)(
    'the bytes handed to the sink equal the planner’s weight figure (%s)',
    async (format) => {
      const r = await runScaleCheck('demo', format, dir);
      expect(r.uploadedBufferBytes).toBe(r.plannedWeightBytes);
      expect(r.loadMBps).toBeGreaterThan(0);
      expect(r.peakRssBytes).toBeGreaterThanOrEqual(r.baselineRssBytes);
    },
  );
});
