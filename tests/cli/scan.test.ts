/**
 * `vulnlab scan` on a source tree: folders walked for .java files with .gitignore honoured (root,
 * nested, negated, .git/info/exclude) and .git skipped; files that cannot be read, are not UTF-8 or
 * do not parse are reported and the rest is scanned; a method longer than the context is scored
 * truncated and marked. `--format sarif` output validates against the SARIF 2.1.0 schema
 * (tests/fixtures/sarif), with `--explain` too (the top lines as relatedLocations inside each
 * method). Exit status 3 when a method is flagged, 0 when none is, 2 for usage errors.
 *
 * The adapter is the PEFT fixture for the demo model (no training run), its score head scaled so
 * probabilities spread across the SARIF levels, with a run's vulnlab_detector.json beside it whose
 * 128-token packs make one demo method longer than the context.
 */
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Log, Notification } from 'sarif';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectValidSarif } from '../helpers/sarif.ts';

const CLI = ['--import', 'tsx', 'src/cli/main.ts'];

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

function vulnlab(args: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn('node', [...CLI, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface DemoMethod {
  code: string;
  target: 0 | 1;
  cwe: string;
}

const demo = readFileSync('public/demo/java-vulns.jsonl', 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as DemoMethod);
const short = demo.filter((d) => d.code.length < 300);
const [vulnA, vulnB] = short.filter((d) => d.target === 1);
const [safeA, safeB] = short.filter((d) => d.target === 0);
const longest = demo.reduce((a, b) => (b.code.length > a.code.length ? b : a));

interface Placed {
  name: string;
  startLine: number;
  endLine: number;
  startColumn: number;
  endColumn: number;
}

const INDENT = '    ';
/** The name before the parameter list, annotations (`@Transactional(...)`) left out. */
const methodName = (code: string) => /(\w+)\s*\(/.exec(code.replace(/@\w+(\([^)]*\))?/g, ''))![1];

/** A class holding demo methods (indented), and where each method lies in it. */
function javaClass(pkg: string, name: string, methods: DemoMethod[]): { text: string; placed: Placed[] } {
  const lines = [`package ${pkg};`, '', `public class ${name} {`];
  const placed: Placed[] = [];
  for (const m of methods) {
    const body = m.code.split('\n');
    const startLine = lines.length + 1;
    lines.push(...body.map((l) => INDENT + l), '');
    // A leading Javadoc is not part of the method: it starts at its first annotation or modifier.
    const comment = body.findIndex((l) => !/^\s*(\/\*|\*|\/\/)/.test(l));
    placed.push({
      name: `${name}.${methodName(m.code)}`,
      startLine: startLine + comment,
      endLine: startLine + body.length - 1,
      startColumn: INDENT.length + 1,
      endColumn: INDENT.length + body[body.length - 1].length + 1,
    });
  }
  lines.push('}', '');
  return { text: lines.join('\n'), placed };
}

const root = mkdtempSync(join(tmpdir(), 'vulnlab-scan-'));
const tree = join(root, 'project');
const adapter = join(root, 'adapter');
const THRESHOLD = 0.5;
/**
 * The fixture's score head is scaled so that the five methods' probabilities spread on both sides of
 * 0.9: the scale (measured in beforeAll, so it follows the demo model and data) puts the method whose
 * logit difference is largest in magnitude at 0.95, and the others below it.
 */
const TOP_PROBABILITY = 0.95;
const expected = new Map<string, Placed & { uri: string }>();

function write(rel: string, text: string | Uint8Array) {
  const path = join(tree, rel);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

function writeClass(rel: string, pkg: string, name: string, methods: DemoMethod[]) {
  const { text, placed } = javaClass(pkg, name, methods);
  write(rel, text);
  for (const p of placed) expected.set(p.name, { ...p, uri: rel });
}

/**
 * `vulnlab scan --adapter <adapter> --threshold 0 --format sarif <extra> <tree>`, its time logged under
 * `label`: exits 3 (methods flagged) with a SARIF log valid against the 2.1.0 schema, returned.
 */
async function sarifScan(label: string, extra: string[]): Promise<Log> {
  const started = performance.now();
  const result = await vulnlab([
    'scan',
    '--adapter',
    adapter,
    '--threshold',
    '0',
    '--format',
    'sarif',
    ...extra,
    tree,
  ]);
  console.log(`${label}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  expect(result.code, result.stderr).toBe(3);
  const sarif = JSON.parse(result.stdout) as Log;
  expectValidSarif(sarif);
  return sarif;
}

/** Writes the fixture adapter with its score head multiplied by `scale`. */
function writeAdapter(scale: number): void {
  const weights = readFileSync('tests/fixtures/peft/adapter/adapter_model.safetensors');
  const headerLength = Number(weights.readBigUInt64LE(0));
  const header = JSON.parse(weights.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { data_offsets: [number, number] }
  >;
  const [begin, end] = header['base_model.model.score.weight'].data_offsets;
  const at = 8 + headerLength + begin;
  for (let o = at; o < 8 + headerLength + end; o += 4)
    weights.writeFloatLE(weights.readFloatLE(o) * scale, o);
  writeFileSync(join(adapter, 'adapter_model.safetensors'), weights);
}

beforeAll(async () => {
  // The fixture adapter (its score head scaled below), and the settings a run writes beside it.
  mkdirSync(adapter);
  copyFileSync('tests/fixtures/peft/adapter/adapter_config.json', join(adapter, 'adapter_config.json'));
  writeAdapter(1);
  writeFileSync(
    join(adapter, 'vulnlab_detector.json'),
    JSON.stringify({
      threshold: THRESHOLD,
      packLength: 128,
      batching: 'packed',
      truncation: 'head',
      normalize: { stripComments: false, collapseWhitespace: false },
      baseModel: 'demo',
    }),
  );

  // The tree: methods in nested folders, ignored files, bad files.
  write('.git/HEAD', 'ref: refs/heads/main\n');
  write('.git/info/exclude', 'src/main/java/com/acme/Excluded.java\n');
  write('.git/Hidden.java', javaClass('x', 'Hidden', [vulnA]).text);
  write('.gitignore', 'build/\n*.gen.java\n');
  write('notes.txt', 'not java\n');
  writeClass('src/main/java/com/acme/Accounts.java', 'com.acme', 'Accounts', [vulnA, safeA]);
  writeClass('src/main/java/com/acme/web/Handler.java', 'com.acme.web', 'Handler', [vulnB, longest]);
  write('src/main/java/com/acme/web/.gitignore', 'Local*.java\n!LocalKept.java\n');
  writeClass('src/main/java/com/acme/web/LocalKept.java', 'com.acme.web', 'LocalKept', [safeB]);
  write('src/main/java/com/acme/web/LocalScratch.java', javaClass('x', 'LocalScratch', [vulnA]).text);
  write('src/main/java/com/acme/Model.gen.java', javaClass('x', 'ModelGen', [vulnA]).text);
  write('src/main/java/com/acme/Excluded.java', javaClass('x', 'Excluded', [vulnA]).text);
  write('build/classes/Generated.java', javaClass('x', 'Generated', [vulnA]).text);
  // Latin-1 'é' (0xE9) on line 2; a file that does not parse; a link to nothing.
  write('src/legacy/Latin1.java', Buffer.from('class Latin1 {\n  // caf\xe9\n  void f() {}\n}\n', 'latin1'));
  write('src/legacy/Broken.java', 'class {\n');
  symlinkSync(join(tree, 'nowhere', 'Gone.java'), join(tree, 'src/legacy/Gone.java'));

  // The head's scale: the logit difference of two classes is linear in it (the head has no bias).
  const unscaled = await vulnlab(['scan', '--adapter', adapter, '--format', 'json', tree]);
  const { methods } = JSON.parse(unscaled.stdout) as { methods: { probability: number }[] };
  const logits = methods.map(({ probability: p }) => Math.log(p / (1 - p)));
  const extreme = logits.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a));
  writeAdapter(Math.log(TOP_PROBABILITY / (1 - TOP_PROBABILITY)) / extreme);
}, 120_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('vulnlab scan of a source tree', () => {
  it('writes SARIF 2.1.0: one result per flagged method, bad files as notifications, exit 3', async () => {
    const sarif = await sarifScan('scan --format sarif', []);

    const run = sarif.runs[0];
    expect(run.tool.driver.name).toBe('VulnLab');
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(run.tool.driver.version).toBe(pkg.version);
    expect(run.tool.driver.properties).toMatchObject({ model: 'demo', adapter });
    expect(run.tool.driver.rules!.map((r) => r.id)).toEqual(['vulnlab/vulnerable-method']);

    // Threshold 0 flags every method: one result each, at its place in its file.
    const results = run.results!;
    const byName = new Map(
      results.map((r) => [r.locations![0].logicalLocations![0].fullyQualifiedName!, r] as const),
    );
    expect([...byName.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [name, place] of expected) {
      const r = byName.get(name)!;
      expect(r.ruleId).toBe('vulnlab/vulnerable-method');
      const physical = r.locations![0].physicalLocation!;
      expect(physical.artifactLocation!.uri, name).toBe(place.uri);
      expect(physical.artifactLocation!.uriBaseId).toBe('SRCROOT');
      expect(physical.region, name).toEqual({
        startLine: place.startLine,
        startColumn: place.startColumn,
        endLine: place.endLine,
        endColumn: place.endColumn,
      });
      const p = r.properties!.probability as number;
      expect(p).toBeGreaterThan(0);
      expect(p).toBeLessThan(1);
      expect(r.level, `${name} p=${p}`).toBe(p >= 0.9 ? 'error' : 'warning');
      expect(r.message.text).toContain(name);
    }
    // Both levels occur (the head's scale puts the five methods on both sides of 0.9).
    expect(new Set(results.map((r) => r.level))).toEqual(new Set(['error', 'warning']));
    expect(run.originalUriBaseIds!.SRCROOT.uri).toBe(`file://${tree}/`);

    // Ignored and .git files are nowhere in the log; the bad files are notifications.
    const text = JSON.stringify(sarif);
    for (const absent of [
      'Hidden',
      'LocalScratch',
      'Model.gen',
      'ModelGen',
      'Excluded',
      'Generated',
      'notes.txt',
    ]) {
      expect(text.includes(absent), absent).toBe(false);
    }
    const notes = run.invocations![0].toolExecutionNotifications!;
    const note = (uri: string): Notification | undefined =>
      notes.find((n) => n.locations![0].physicalLocation!.artifactLocation!.uri === uri);
    expect(note('src/legacy/Latin1.java')).toMatchObject({
      descriptor: { id: 'vulnlab/not-utf8' },
      level: 'warning',
      locations: [{ physicalLocation: { region: { startLine: 2 } } }],
    });
    expect(note('src/legacy/Broken.java')).toMatchObject({
      descriptor: { id: 'vulnlab/not-java' },
      locations: [{ physicalLocation: { region: { startLine: 1, startColumn: 7 } } }],
    });
    expect(note('src/legacy/Gone.java')?.descriptor?.id).toBe('vulnlab/unreadable-file');

    // The long method is scored on its first 127 tokens, said in its result and in a notification.
    const long = expected.get(`Handler.${methodName(longest.code)}`)!;
    const truncated = byName.get(long.name)!.properties!.truncated as {
      kept: string;
      scoredTokens: number;
      totalTokens: number;
    };
    expect(truncated).toMatchObject({ kept: 'head', scoredTokens: 127 });
    expect(truncated.totalTokens).toBeGreaterThan(127);
    const truncatedNotes = notes.filter((n) => n.descriptor!.id === 'vulnlab/truncated-method');
    expect(truncatedNotes.map((n) => n.properties!.method)).toEqual([long.name]);
    expect(results.filter((r) => r.properties!.truncated).length).toBe(1);
    expect(notes.length).toBe(4);
  }, 300_000);

  it('prints a table, flags at the run’s threshold, reports bad files on stderr; exit 3 iff flagged', async () => {
    const result = await vulnlab(['scan', '--adapter', adapter, tree]);
    expect(result.stderr).toMatch(/Latin1\.java:2: is not UTF-8/);
    expect(result.stderr).toMatch(/Broken\.java:1: not parsed as Java/);
    expect(result.stderr).toMatch(/Gone\.java: cannot be read/);
    const rows = result.stdout.split('\n').filter((l) => /^[! ][~ ] \d\.\d{4} {2}/.test(l));
    expect(rows.length).toBe(expected.size);
    expect(rows.filter((l) => l[1] === '~').length).toBe(1);
    const probabilities = rows.map((row) => Number(row.slice(3, 9)));
    rows.forEach((row, i) => expect(row[0], row).toBe(probabilities[i] >= THRESHOLD ? '!' : ' '));
    expect(result.code, result.stderr).toBe(probabilities.some((p) => p >= THRESHOLD) ? 3 : 0);

    // Above every probability nothing is flagged: exit 0. JSON carries the issues.
    const highest = Math.max(...probabilities);
    expect(highest).toBeLessThan(0.999);
    const above = highest + (1 - highest) / 2;
    const none = await vulnlab([
      'scan',
      '--adapter',
      adapter,
      '--format',
      'json',
      '--threshold',
      `${above}`,
      tree,
    ]);
    expect(none.code, none.stderr).toBe(0);
    const report = JSON.parse(none.stdout) as {
      methods: { flagged: boolean; truncated?: object }[];
      issues: { kind: string; uri: string }[];
    };
    expect(report.methods.length).toBe(expected.size);
    expect(report.methods.every((m) => m.flagged === false)).toBe(true);
    expect(report.issues.map((i) => `${i.kind} ${i.uri}`).sort()).toEqual([
      'not-java src/legacy/Broken.java',
      'not-utf8 src/legacy/Latin1.java',
      `truncated src/main/java/com/acme/web/Handler.java`,
      'unreadable src/legacy/Gone.java',
    ]);
  }, 300_000);

  it('--explain: each flagged method’s top lines lie in its region, as SARIF relatedLocations (schema-valid)', async () => {
    const sarif = await sarifScan('scan --explain --format sarif', ['--explain', '--ig-steps', '4']);
    const run = sarif.runs[0];
    expect(run.properties!.explain).toEqual({
      method: 'ig',
      steps: 4,
      score: 'logit(vulnerable) − logit(not)',
    });
    expect(run.results!.length).toBe(expected.size);
    for (const r of run.results!) {
      const name = r.locations![0].logicalLocations![0].fullyQualifiedName!;
      const place = expected.get(name)!;
      const related = r.relatedLocations ?? [];
      expect(related.length, name).toBeGreaterThanOrEqual(1);
      expect(related.length, name).toBeLessThanOrEqual(3);
      let total = 0;
      related.forEach((loc, id) => {
        expect(loc.id).toBe(id);
        const physical = loc.physicalLocation!;
        expect(physical.artifactLocation).toEqual({ uri: place.uri, uriBaseId: 'SRCROOT' });
        const { startLine, endLine } = physical.region!;
        expect(startLine, name).toBeGreaterThanOrEqual(place.startLine);
        expect(startLine, name).toBeLessThanOrEqual(place.endLine);
        expect(endLine).toBe(startLine);
        const share = Number(/^(\d+)% of the attribution/.exec(loc.message!.text!)![1]);
        total += share;
      });
      expect(total, name).toBeLessThanOrEqual(102);
      // Strongest first: distinct lines.
      expect(new Set(related.map((l) => l.physicalLocation!.region!.startLine)).size).toBe(related.length);
    }
  }, 300_000);

  it('--explain in the table and json with gradient × input; its flags alone are a usage error', async () => {
    const result = await vulnlab([
      'scan',
      '--adapter',
      adapter,
      '--format',
      'json',
      '--explain',
      '--explain-method',
      'grad',
      tree,
    ]);
    const report = JSON.parse(result.stdout) as {
      explain: { method: string };
      methods: {
        method: string;
        flagged: boolean;
        topLines?: { startLine: number; weight: number }[];
      }[];
    };
    expect(report.explain.method).toBe('grad');
    expect(report.methods.some((m) => m.flagged)).toBe(true);
    for (const m of report.methods) {
      if (!m.flagged) {
        expect(m.topLines, m.method).toBeUndefined();
        continue;
      }
      const place = expected.get(m.method)!;
      expect(m.topLines!.length).toBeGreaterThanOrEqual(1);
      for (const t of m.topLines!) {
        expect(t.startLine).toBeGreaterThanOrEqual(place.startLine);
        expect(t.startLine).toBeLessThanOrEqual(place.endLine);
        expect(t.weight).toBeGreaterThan(0);
      }
      // gradient × input is unsigned: the shares of all lines sum to 1, so the top 3 to at most 1.
      expect(m.topLines!.reduce((s, t) => s + t.weight, 0)).toBeLessThanOrEqual(1.002);
    }
    const table = await vulnlab([
      'scan',
      '--adapter',
      adapter,
      '--explain',
      '--explain-method',
      'grad',
      tree,
    ]);
    expect(table.stdout).toMatch(/\n {12}line \d+ +\d+%/);
    const stray = await vulnlab(['scan', '--adapter', adapter, '--ig-steps', '8', tree]);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toMatch(/go with --explain/);
    const bad = await vulnlab(['scan', '--adapter', adapter, '--explain', '--explain-method', 'lime', tree]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--explain-method must be one of ig, grad/);
  }, 300_000);

  it('refuses SARIF without a threshold, an unknown format and a missing path (exit 2)', async () => {
    const noThreshold = await vulnlab([
      'scan',
      '--adapter',
      'tests/fixtures/peft/adapter',
      '--format',
      'sarif',
      join(tree, 'src/main/java/com/acme/Accounts.java'),
    ]);
    expect(noThreshold.code).toBe(2);
    expect(noThreshold.stderr).toMatch(/no threshold/);
    const format = await vulnlab(['scan', '--adapter', adapter, '--format', 'xml', tree]);
    expect(format.code).toBe(2);
    expect(format.stderr).toMatch(/--format must be one of table, json, sarif/);
    const missing = await vulnlab(['scan', '--adapter', adapter, join(tree, 'nope')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/Cannot read .*nope/);
  }, 120_000);
});
