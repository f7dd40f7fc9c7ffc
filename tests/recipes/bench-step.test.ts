/**
 * recipes/torch/bench_step.py, the PyTorch peer of `bench/train-step.bench.ts --shapes wizardcoder`
 * (scripts/gpu-bench.sh): it reads the bench's workloads and prints one result in bench/run.ts's
 * layout. Here on the CPU with a small pack, one timed step per precision: the figures are not
 * checked, only that the step runs and reports what scripts/bench-table.ts reads.
 *
 * Needs Debian's python3-torch (as tests/recipes/recipe.test.ts); VULNLAB_SKIP_TORCH=1 skips the
 * PyTorch part, VULNLAB_PYTHON picks another interpreter.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { findPreset } from '../../src/io/presets.ts';
import { wizardCoderWorkloads, workloadBatch, type ShapeWorkload } from '../../bench/train-step.bench.ts';

const exec = promisify(execFile);
const PYTHON = process.env.VULNLAB_PYTHON ?? '/usr/bin/python3';
const SKIP = process.env.VULNLAB_SKIP_TORCH === '1';
const SCRIPT = 'recipes/torch/bench_step.py';

describe('train-step --shapes wizardcoder workloads', () => {
  it('are the presets WizardCoder-1B and -3B, or one tiny stand-in when quick', () => {
    const full = wizardCoderWorkloads(false);
    expect(full.map((w) => w.preset)).toEqual([
      'WizardLMTeam/WizardCoder-1B-V1.0',
      'WizardLMTeam/WizardCoder-3B-V1.0',
    ]);
    for (const w of full) expect(w.config).toEqual(findPreset(w.preset)!.config);
    const [quick] = wizardCoderWorkloads(true);
    expect(quick.preset).toBe('');
    for (const w of [...full, quick]) {
      expect(w).toMatchObject({ weightFormat: 'q4_0', packLength: 2048, recompute: true, lora: { r: 8 } });
      expect(w.lengths.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(w.packLength);
    }
  });

  it('fill one pack: functions ended by EOS, padding after them', () => {
    const [w] = wizardCoderWorkloads(true);
    const batch = workloadBatch(w);
    const used = w.lengths.reduce((a, b) => a + b, 0);
    expect(batch.inputIds[0]).toHaveLength(w.packLength);
    expect(batch.segmentIds[0].slice(used).every((s) => s === -1)).toBe(true);
    expect(batch.functions).toHaveLength(w.lengths.length);
    let start = 0;
    w.lengths.forEach((n, s) => {
      expect(batch.inputIds[0][start + n - 1]).toBe(w.config.eos_token_id ?? 0);
      expect(batch.functions[s].last).toBe(start + n - 2);
      start += n;
    });
  });
});

describe.skipIf(SKIP)('recipes/torch/bench_step.py', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-step-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('answers --help', async () => {
    const { stdout } = await exec(PYTHON, [SCRIPT, '--help']);
    expect(stdout).toContain('--workloads');
  });

  it('times the stand-in step on the CPU in both precisions', async () => {
    // The quick workload on a 256-token pack: the same structure, a second or two per step here.
    const [stand] = wizardCoderWorkloads(true);
    const small: ShapeWorkload = { ...stand, label: 'small', packLength: 256, lengths: [100, 90, 60] };
    const workloads = join(dir, 'workloads.json');
    const out = join(dir, 'result.json');
    writeFileSync(workloads, JSON.stringify([small]));
    const { stdout } = await exec(
      PYTHON,
      [
        SCRIPT,
        '--workloads',
        workloads,
        '--device',
        'cpu',
        '--max-steps',
        '1',
        '--threads',
        '1',
        '--out',
        out,
      ],
      { env: { ...process.env, OMP_NUM_THREADS: '1', PYTHONDONTWRITEBYTECODE: '1' }, timeout: 100_000 },
    );
    const result = JSON.parse(readFileSync(out, 'utf8')) as {
      name: string;
      device: string;
      rows: Record<string, string | number>[];
      adapter: { device: string };
    };
    expect(JSON.parse(stdout)).toEqual(result);
    expect(result).toMatchObject({ name: 'train-step-torch', device: 'cpu', adapter: { device: 'cpu' } });
    expect(result.rows.map((r) => r.precision)).toEqual(['fp32 (TF32 off)', 'bf16 autocast']);
    for (const row of result.rows) {
      expect(row).toMatchObject({ workload: 'small', device: 'cpu', base: 'q4_0', 'timed steps': 1 });
      expect(row['tokens/s']).toBeGreaterThan(0);
      expect(Number(row['ms/step'])).toBeCloseTo((256 / Number(row['tokens/s'])) * 1000, 6);
      expect(Number.isFinite(Number(row['loss step 1']))).toBe(true);
    }
    // Same weights, batch and first step in both precisions: the first losses agree to bf16 rounding.
    const [f32, bf16] = result.rows.map((r) => Number(r['loss step 1']));
    expect(Math.abs(f32 - bf16)).toBeLessThan(0.05 * Math.abs(f32) + 1e-3);
  });
});
