import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const CLI = ['--import', 'tsx', 'src/cli/main.ts'];

async function vulnlab(args: string[], timeout = 60_000) {
  try {
    const { stdout, stderr } = await run('node', [...CLI, ...args], { timeout, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; signal?: string; stdout?: string; stderr?: string };
    const stderr = `${e.stderr ?? ''}${e.signal ? `\n(killed by ${e.signal})` : ''}\n${(e.stdout ?? '').slice(-2000)}`;
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr };
  }
}

describe('vulnlab CLI', () => {
  it(
    'trains the demo model on the demo dataset and writes metrics, scores and a PEFT adapter',
    async () => {
      const out = mkdtempSync(join(tmpdir(), 'vulnlab-run-'));
      const started = performance.now();
      const result = await vulnlab(
        [
          'train',
          '--model',
          'demo',
          '--data',
          'public/demo/java-vulns.jsonl',
          '--out',
          out,
          '--seed',
          '7',
          '--epochs',
          '1',
        ],
        40 * 60_000,
      );
      const seconds = (performance.now() - started) / 1000;
      expect(result.code, result.stderr).toBe(0);
      const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
      for (const split of ['valid', 'test']) {
        for (const key of ['roc_auc', 'pr_auc', 'f1', 'precision', 'recall', 'threshold', 'n']) {
          expect(typeof metrics[split][key], `${split}.${key}`).toBe('number');
        }
      }
      expect(metrics.test.threshold).toBe(metrics.valid.threshold);
      expect(metrics.throughput.tokens_per_s).toBeGreaterThan(0);
      console.log(`demo run: test ROC AUC ${metrics.test.roc_auc.toFixed(3)} in ${seconds.toFixed(0)} s`);
      expect(metrics.test.roc_auc).toBeGreaterThanOrEqual(0);
      expect(metrics.test.roc_auc).toBeLessThanOrEqual(1);
      expect(metrics.test.intervals_95.roc_auc[0]).toBeLessThanOrEqual(metrics.test.roc_auc);
      const adapterConfig = JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8'));
      expect(adapterConfig).toMatchObject({
        peft_type: 'LORA',
        task_type: 'SEQ_CLS',
        modules_to_save: ['score'],
      });
      expect(existsSync(join(out, 'adapter', 'adapter_model.safetensors'))).toBe(true);
      const scores = readFileSync(join(out, 'scores.csv'), 'utf8').trim().split('\n');
      expect(scores[0]).toBe('split,example_index,label,score,cwe');
      expect(scores.length - 1).toBe(metrics.valid.n + metrics.test.n);
      expect(existsSync(join(out, 'config.json'))).toBe(true);
    },
    40 * 60_000,
  );

  it('names a bad flag value and its field, with exit code 2', async () => {
    const result = await vulnlab([
      'train',
      '--data',
      'public/demo/java-vulns.jsonl',
      '--out',
      '/tmp/x',
      '--lr=-3',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/optimizer\.lr: got -3, expected a number in \(0, 1\]/);
  });

  it('rejects an unknown flag and a missing file with exit code 2', async () => {
    const unknown = await vulnlab(['train', '--data', 'x.jsonl', '--out', '/tmp/x', '--learning-rate', '1']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/learning-rate/);
    const missing = await vulnlab(['train', '--data', '/nonexistent.jsonl', '--out', '/tmp/x']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/Cannot read data file \/nonexistent\.jsonl/);
  });

  it('lists its commands and refuses an unknown one with exit code 2', async () => {
    const help = await vulnlab(['help']);
    expect(help.stdout).toMatch(/train/);
    const unknown = await vulnlab(['fly']);
    expect(unknown.code).toBe(2);
  });
});
