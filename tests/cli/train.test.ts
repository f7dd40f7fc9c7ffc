import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
    'trains the demo model on the demo dataset with the preset’s defaults: it learns (test ROC AUC ≥ 0.90), and writes metrics, scores and a PEFT adapter',
    async () => {
      const out = mkdtempSync(join(tmpdir(), 'vulnlab-run-'));
      const started = performance.now();
      // exactly the README's command: the demo preset's run defaults, its seed included
      const result = await vulnlab(
        ['train', '--model', 'demo', '--data', 'public/demo/java-vulns.jsonl', '--out', out],
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
      console.log(
        `demo run: test ROC AUC ${metrics.test.roc_auc.toFixed(3)}, validation ${metrics.valid.roc_auc.toFixed(3)} in ${seconds.toFixed(0)} s`,
      );
      expect(metrics.test.roc_auc).toBeGreaterThanOrEqual(0.9);
      // the training loss falls: the last epoch's mean below the first's
      const train = metrics.curves.train as { epoch: number; loss: number }[];
      const epochMean = (epoch: number) => {
        const losses = train.filter((p) => p.epoch === epoch).map((p) => p.loss);
        return losses.reduce((a, b) => a + b, 0) / losses.length;
      };
      const lastEpoch = Math.max(...train.map((p) => p.epoch));
      expect(lastEpoch).toBeGreaterThan(1);
      expect(epochMean(lastEpoch)).toBeLessThan(epochMean(1));
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

  it(
    'resumed with --resume, writes the same curves as the run left alone, validation loss included',
    async () => {
      // A tiny run: 12 training functions in packs of 128 tokens, an evaluation every 2 steps.
      const dir = mkdtempSync(join(tmpdir(), 'vulnlab-resume-'));
      const rows = readFileSync('public/demo/java-vulns.jsonl', 'utf8').trim().split('\n');
      const pick = (split: string, perClass: number) =>
        [1, 0].flatMap((label) =>
          rows
            .filter((line) => {
              const row = JSON.parse(line) as { split: string; target: number };
              return row.split === split && Number(row.target) === label;
            })
            .slice(0, perClass),
        );
      const data = join(dir, 'slice.jsonl');
      writeFileSync(
        data,
        [...pick('train', 6), ...pick('validation', 4), ...pick('test', 2)].join('\n') + '\n',
      );
      const config = join(dir, 'config.json');
      const settings = {
        weightFormat: 'f32',
        lora: { r: 4 },
        batching: { packLength: 128, packsPerStep: 2 },
        epochs: 1,
        evalEvery: 2,
        checkpointEvery: 4,
        seed: 7,
      };
      writeFileSync(config, JSON.stringify(settings));
      const whole = join(dir, 'whole');
      const args = ['train', '--model', 'demo', '--data', data, '--config', config, '--out', whole];
      const first = await vulnlab(args, 20 * 60_000);
      expect(first.code, first.stderr).toBe(0);
      const reference = JSON.parse(readFileSync(join(whole, 'metrics.json'), 'utf8'));
      const steps: number = reference.steps;
      // The uninterrupted run left its last checkpoint behind: resume a copy of the folder from it.
      const checkpoint = JSON.parse(readFileSync(join(whole, 'checkpoint', 'checkpoint.json'), 'utf8'));
      expect(checkpoint.step).toBeGreaterThan(2);
      expect(checkpoint.step).toBeLessThan(steps);
      const resumed = join(dir, 'resumed');
      cpSync(whole, resumed, { recursive: true });
      rmSync(join(resumed, 'metrics.json'));
      const second = await vulnlab(['train', '--resume', resumed], 20 * 60_000);
      expect(second.code, second.stderr).toBe(0);
      expect(second.stdout).toMatch(new RegExp(`resuming .* at step ${checkpoint.step}`));
      const metrics = JSON.parse(readFileSync(join(resumed, 'metrics.json'), 'utf8'));
      // From step 1, not from the resume step; validation loss before the checkpoint included.
      expect(metrics.curves.train.map((p: { step: number }) => p.step)).toEqual(
        Array.from({ length: steps }, (_, i) => i + 1),
      );
      const before = metrics.curves.validation.filter((e: { step: number }) => e.step <= checkpoint.step);
      expect(before.length).toBeGreaterThan(0);
      for (const e of before) expect(typeof e.loss).toBe('number');
      expect(metrics.curves).toEqual(reference.curves);
      expect(metrics.test.roc_auc).toBe(reference.test.roc_auc);
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
