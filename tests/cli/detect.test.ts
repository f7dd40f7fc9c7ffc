/**
 * The CLI's run lifecycle on a small slice of the demo data: a train run killed after a checkpoint
 * and resumed ends with the same metrics and scores as one never interrupted; `eval` with the exported
 * adapter reproduces the run's test scores; `scan` ranks the methods of Java files, and its SARIF for a
 * folder of the run's test methods flags what the run flags.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Log } from 'sarif';
import { beforeAll, describe, expect, it } from 'vitest';
import { demoSliceJsonl } from '../helpers/demo-data.ts';
import { FakeHub } from '../io/helpers/hub-server.ts';
import { expectValidSarif } from '../helpers/sarif.ts';

const CLI = ['--import', 'tsx', 'src/cli/main.ts'];

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `killWhen` kills it (SIGKILL, like a crash) as soon as it returns true. */
function vulnlab(
  args: string[],
  killWhen?: () => boolean,
  env: Record<string, string> = {},
): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn('node', [...CLI, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const poll = killWhen && setInterval(() => killWhen() && child.kill('SIGKILL'), 100);
    child.on('close', (code) => {
      if (poll) clearInterval(poll);
      resolve({ code, stdout, stderr });
    });
  });
}

const root = mkdtempSync(join(tmpdir(), 'vulnlab-cli-'));
const data = join(root, 'slice.jsonl');
const TRAIN = ['--model', 'demo', '--data', data, '--epochs', '2', '--pack-length', '128'];
const FLAGS = [...TRAIN, '--packs-per-step', '2', '--seed', '3', '--lora-r', '4'];

beforeAll(() => {
  writeFileSync(data, demoSliceJsonl(24, 12));
});

describe('vulnlab CLI: resume, eval and scan', () => {
  const whole = join(root, 'whole');
  const resumed = join(root, 'resumed');

  it('a run killed after a checkpoint and resumed ends like one never interrupted', async () => {
    const config = join(root, 'config.json');
    writeFileSync(config, JSON.stringify({ checkpointEvery: 3 }));
    const full = await vulnlab(['train', ...FLAGS, '--config', config, '--out', whole]);
    expect(full.code, full.stderr).toBe(0);

    const checkpoint = join(resumed, 'checkpoint', 'checkpoint.json');
    const killed = await vulnlab(['train', ...FLAGS, '--config', config, '--out', resumed], () =>
      existsSync(checkpoint),
    );
    expect(killed.code).toBeNull(); // killed by the signal
    expect(existsSync(join(resumed, 'metrics.json'))).toBe(false);
    const step = (JSON.parse(readFileSync(checkpoint, 'utf8')) as { step: number }).step;
    const again = await vulnlab(['train', '--resume', resumed]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`resuming .* at step ${step}`));

    const metrics = (dir: string) => JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'));
    const a = metrics(whole);
    const b = metrics(resumed);
    expect(b.steps).toBe(a.steps);
    expect(b.best_step).toBe(a.best_step);
    expect(b.test.roc_auc).toBe(a.test.roc_auc);
    expect(readFileSync(join(resumed, 'scores.csv'), 'utf8')).toBe(
      readFileSync(join(whole, 'scores.csv'), 'utf8'),
    );
    expect(readFileSync(join(resumed, 'adapter', 'adapter_model.safetensors'))).toEqual(
      readFileSync(join(whole, 'adapter', 'adapter_model.safetensors')),
    );
  }, 600_000);

  it('eval with the exported adapter gives the run’s test scores and metrics', async () => {
    const out = join(root, 'eval');
    const result = await vulnlab([
      'eval',
      '--model',
      'demo',
      '--adapter',
      join(whole, 'adapter'),
      '--data',
      join(whole, 'data.jsonl'),
      '--split',
      'test',
      '--out',
      out,
    ]);
    expect(result.code, result.stderr).toBe(0);
    const rows = (file: string) =>
      readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .filter((l) => l.startsWith('test,'));
    expect(rows(join(out, 'scores.csv'))).toEqual(rows(join(whole, 'scores.csv')));
    const run = JSON.parse(readFileSync(join(whole, 'metrics.json'), 'utf8'));
    const evaluated = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(evaluated.eval.roc_auc).toBe(run.test.roc_auc);
    expect(evaluated.eval.threshold).toBe(run.valid.threshold);
    expect(evaluated.threshold_source).toMatch(/validation/);
  }, 300_000);

  it('eval loads the base in the run’s weight format (q8_0) and gives the run’s test scores', async () => {
    const q8 = join(root, 'q8');
    const trained = await vulnlab(['train', ...FLAGS, '--weight-format', 'q8_0', '--out', q8]);
    expect(trained.code, trained.stderr).toBe(0);
    const settingsPath = join(q8, 'adapter', 'vulnlab_detector.json');
    expect(JSON.parse(readFileSync(settingsPath, 'utf8')).weightFormat).toBe('q8_0');
    const testRows = (file: string) =>
      readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('test,'));
    const evaluate = async (adapter: string, out: string) => {
      const result = await vulnlab([
        'eval',
        '--adapter',
        adapter,
        '--data',
        join(q8, 'data.jsonl'),
        '--split',
        'test',
        '--out',
        out,
      ]);
      expect(result.code, result.stderr).toBe(0);
      return testRows(join(out, 'scores.csv'));
    };
    expect(await evaluate(join(q8, 'adapter'), join(root, 'q8-eval'))).toEqual(
      testRows(join(q8, 'scores.csv')),
    );
    // Without the recorded format (a file from before it was recorded) the base loads as f32: other scores.
    const asF32 = join(root, 'q8-adapter-f32');
    cpSync(join(q8, 'adapter'), asF32, { recursive: true });
    const { weightFormat: _dropped, ...older } = JSON.parse(readFileSync(settingsPath, 'utf8'));
    writeFileSync(join(asF32, 'vulnlab_detector.json'), JSON.stringify(older));
    expect(await evaluate(asF32, join(root, 'q8-eval-f32'))).not.toEqual(testRows(join(q8, 'scores.csv')));
  }, 600_000);

  it('scan ranks every method of Java files, skipping a file that does not parse', async () => {
    const good = join(root, 'Accounts.java');
    writeFileSync(
      good,
      `public class Accounts {
    public ResultSet find(String category) throws SQLException {
        return conn.createStatement().executeQuery("SELECT * FROM a WHERE c = '" + category + "'");
    }
    public ResultSet findSafe(String category) throws SQLException {
        PreparedStatement ps = conn.prepareStatement("SELECT * FROM a WHERE c = ?");
        ps.setString(1, category);
        return ps.executeQuery();
    }
    Accounts(Connection conn) { this.conn = conn; }
}
`,
    );
    const bad = join(root, 'Broken.java');
    writeFileSync(bad, 'class {');
    const result = await vulnlab(['scan', '--adapter', join(whole, 'adapter'), '--json', good, bad]);
    expect(result.stderr).toMatch(/Broken\.java:1: not parsed as Java/);
    const report = JSON.parse(result.stdout) as {
      threshold: number;
      methods: { method: string; line: number; probability: number; flagged: boolean }[];
    };
    expect(report.methods.map((m) => m.method).sort()).toEqual([
      'Accounts.Accounts',
      'Accounts.find',
      'Accounts.findSafe',
    ]);
    const p = report.methods.map((m) => m.probability);
    expect(p.every((x) => x > 0 && x < 1)).toBe(true);
    expect(p).toEqual([...p].sort((x, y) => y - x));
    expect(report.methods.every((m) => m.flagged === m.probability >= report.threshold)).toBe(true);
    // Exit status 3 when a method is flagged, 0 when none is.
    expect(result.code, result.stderr).toBe(report.methods.some((m) => m.flagged) ? 3 : 0);

    const none = await vulnlab(['scan', '--adapter', join(whole, 'adapter'), bad]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/No file could be parsed as Java/);
  }, 300_000);

  it('scan --format sarif of a folder of the run’s test methods flags what the run flags, with its scores', async () => {
    // Each test method of the run in its own class file. The scanner reads a method from its first
    // annotation or modifier, so methods with a leading Javadoc (which the run scored) are left out.
    const tree = join(root, 'tree');
    const scores = new Map(
      readFileSync(join(whole, 'scores.csv'), 'utf8')
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('test,'))
        .map((l) => l.split(','))
        .map(([, index, , score]) => [Number(index), Number(score)]),
    );
    const files = new Map<string, number>();
    readFileSync(join(whole, 'data.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .forEach((line, index) => {
        const { code, cwe } = JSON.parse(line) as { code: string; cwe: string };
        if (!scores.has(index) || code.startsWith('/*')) return;
        const uri = `${cwe}/M${index}.java`;
        mkdirSync(join(tree, cwe), { recursive: true });
        writeFileSync(join(tree, uri), `public class M${index} {\n${code}\n}\n`);
        files.set(uri, index);
      });
    expect(files.size).toBeGreaterThanOrEqual(4);
    const threshold = JSON.parse(readFileSync(join(whole, 'metrics.json'), 'utf8')).valid.threshold as number;
    const result = await vulnlab(['scan', '--adapter', join(whole, 'adapter'), '--format', 'sarif', tree]);
    const sarif = JSON.parse(result.stdout) as Log;
    expectValidSarif(sarif);
    const flagged = new Map(
      sarif.runs[0].results!.map((r) => [
        r.locations![0].physicalLocation!.artifactLocation!.uri!,
        r.properties!.probability as number,
      ]),
    );
    const runFlags = [...files].filter(([, index]) => scores.get(index)! >= threshold).map(([uri]) => uri);
    expect([...flagged.keys()].sort()).toEqual(runFlags.sort());
    for (const [uri, probability] of flagged)
      expect(probability).toBeCloseTo(scores.get(files.get(uri)!)!, 4);
    expect(result.code, result.stderr).toBe(runFlags.length > 0 ? 3 : 0);
  }, 300_000);

  it('reads the base model from the Hub (HF_ENDPOINT, HF_TOKEN) once, then from its cache', async () => {
    const hub = new FakeHub();
    const files = new Map(
      ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'].map((f) => [
        f,
        new Uint8Array(readFileSync(join('public/models/demo', f))),
      ]),
    );
    hub.repos.set('vulnlab/demo', { files, token: 'hf_secret' });
    await hub.start();
    try {
      const env = { HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_secret', VULNLAB_CACHE: join(root, 'cache') };
      const args = ['eval', '--model', 'vulnlab/demo', '--adapter', join(whole, 'adapter'), '--data', data];
      const first = await vulnlab(args, undefined, env);
      expect(first.code, first.stderr).toBe(0);
      const local = await vulnlab([
        'eval',
        '--model',
        'demo',
        '--adapter',
        join(whole, 'adapter'),
        '--data',
        data,
      ]);
      // Same weights, same scores: the Hub copy is the demo model.
      expect(first.stdout.match(/ROC AUC [\d.]+/)![0]).toBe(local.stdout.match(/ROC AUC [\d.]+/)![0]);
      const weightBytes = () =>
        hub.log.filter((r) => r.path.endsWith('model.safetensors')).reduce((sum, r) => sum + r.bytes, 0);
      const downloaded = weightBytes();
      expect(downloaded).toBeGreaterThan(0);
      expect(hub.log.every((r) => r.authorization === 'Bearer hf_secret')).toBe(true);
      const second = await vulnlab(args, undefined, env);
      expect(second.code, second.stderr).toBe(0);
      // Only the safetensors header is read again (to key the cache); the weights come from the cache.
      expect(weightBytes() - downloaded).toBeLessThan(downloaded / 100);
      const gated = await vulnlab(args, undefined, {
        ...env,
        HF_TOKEN: '',
        VULNLAB_CACHE: join(root, 'cache2'),
      });
      expect(gated.code).not.toBe(0);
      expect(gated.stderr).toMatch(/token/i);
    } finally {
      await hub.stop();
    }
  }, 300_000);

  it('refuses a missing adapter, a bad threshold and a run folder without a checkpoint (exit 2)', async () => {
    const noAdapter = await vulnlab(['eval', '--adapter', join(root, 'nope'), '--data', data]);
    expect(noAdapter.code).toBe(2);
    expect(noAdapter.stderr).toMatch(/Cannot read adapter config file/);
    const threshold = await vulnlab([
      'eval',
      '--adapter',
      join(whole, 'adapter'),
      '--data',
      data,
      '--threshold',
      '2',
    ]);
    expect(threshold.code).toBe(2);
    expect(threshold.stderr).toMatch(/--threshold must be a probability/);
    const resume = await vulnlab(['train', '--resume', root]);
    expect(resume.code).toBe(2);
    expect(resume.stderr).toMatch(/no complete checkpoint/);
  }, 120_000);
});
