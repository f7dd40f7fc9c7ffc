import { existsSync, readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { importDataset } from '../../src/data/import';
import { extractJavaMethods } from '../../src/data/java';
import { qualityReport } from '../../src/data/quality';
import { ByteTokenizer } from '../../src/data/tokenize';
import { loadTokenizer } from '../../src/io/tokenizer';
import { DEMO_DATASET, makeDemoDataset, toJsonl } from '../../scripts/make-demo-dataset';

const FILE = 'public/demo/java-vulns.jsonl';
const TOKENIZER = 'public/models/demo/tokenizer.json';
const TOKENIZER_CONFIG = 'public/models/demo/tokenizer_config.json';

/** Java lexical tokens as a simple lexer splits them (same pattern as scripts/bow-baseline.py). */
const javaTokens = (code: string): string[] => code.match(/[A-Za-z_$][\w$]*|\d+|"(?:[^"\\]|\\.)*"|\S/g) ?? [];

interface Row {
  code: string;
  target: number;
  cwe: string;
}

/**
 * Tokens whose presence is exactly the label within a family: present in every vulnerable method and
 * no fixed one, or in every fixed method and no vulnerable one. `family token` strings.
 */
function separatingTokens(rows: readonly Row[], tokens: (code: string) => readonly (string | number)[]) {
  const found: string[] = [];
  for (const cwe of new Set(rows.map((r) => r.cwe))) {
    const sets = [0, 1].map((label) =>
      rows.filter((r) => r.cwe === cwe && r.target === label).map((r) => new Set(tokens(r.code))),
    );
    const candidates = new Set(sets.flat().flatMap((s) => [...s]));
    for (const t of candidates)
      for (const [inAll, inNone] of [
        [sets[1], sets[0]],
        [sets[0], sets[1]],
      ])
        if (inAll.every((s) => s.has(t)) && !inNone.some((s) => s.has(t)))
          found.push(`${cwe} ${JSON.stringify(t)}`);
  }
  return found;
}

const readRows = (): Row[] =>
  readFileSync(FILE, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Row);

describe('demo dataset', () => {
  it('is what the seeded generator produces and stays under 2 MB', () => {
    const text = readFileSync(FILE, 'utf8');
    expect(statSync(FILE).size).toBeLessThan(2 * 1024 * 1024);
    expect(toJsonl(makeDemoDataset(DEMO_DATASET))).toBe(text);
  });

  it('imports through importDataset; every split has both classes; no pair or project crosses splits', async () => {
    const bytes = new Uint8Array(readFileSync(FILE));
    const r = await importDataset({ name: 'java-vulns.jsonl', data: bytes });
    expect(r.issues).toEqual([]);
    expect(r.recordCount).toBeGreaterThanOrEqual(300);
    const q = qualityReport(r.records, { tokenizer: new ByteTokenizer(), contextLength: 4096 });
    expect(q.perSplit).toHaveLength(3);
    for (const s of q.perSplit!) {
      expect(s.positives).toBeGreaterThan(20);
      expect(s.negatives).toBeGreaterThan(20);
    }
    const codes = q.warnings.map((w) => w.code);
    expect(codes).not.toContain('one-class');
    expect(codes).not.toContain('one-class-split');
    expect(codes).not.toContain('cross-split-duplicates');
    expect(q.conflictingLabels.groups).toBe(0);
    expect(q.perCwe.length).toBe(13);
    const projectSplit = new Map<string, string>();
    for (const rec of r.records) {
      expect(projectSplit.get(rec.project!) ?? rec.split).toBe(rec.split);
      projectSplit.set(rec.project!, rec.split!);
    }
    // lengths from tens to many hundreds of tokens (bytes here; BPE is ~3-4 bytes per token)
    expect(
      q.lengths!.histogram[0].count + q.lengths!.histogram[1].count + q.lengths!.histogram[2].count,
    ).toBeGreaterThan(0);
    // short, focused methods: median a few hundred characters, a tail to twice that, nothing huge
    const sorted = r.records.map((rec) => rec.code.length).sort((a, b) => a - b);
    expect(sorted[sorted.length >> 1]).toBeGreaterThan(350);
    expect(sorted[sorted.length >> 1]).toBeLessThan(650);
    expect(q.lengths!.max).toBeGreaterThan(700);
    expect(q.lengths!.max).toBeLessThanOrEqual(1600);
  });

  it('no single token separates the classes within a family (Java lexical tokens and BPE tokens)', () => {
    // the check itself: a token in every vulnerable method and no fixed one is found, either way round
    const probe: Row[] = [
      { code: 'a = x + y;', target: 1, cwe: 'T' },
      { code: 'b = x + z;', target: 1, cwe: 'T' },
      { code: 'a = x - y;', target: 0, cwe: 'T' },
      { code: 'a = z - y;', target: 0, cwe: 'T' },
    ];
    expect(separatingTokens(probe, javaTokens).sort()).toEqual(['T "+"', 'T "-"']);

    const rows = readRows();
    expect(separatingTokens(rows, javaTokens)).toEqual([]);
    const config = existsSync(TOKENIZER_CONFIG) ? readFileSync(TOKENIZER_CONFIG, 'utf8') : undefined;
    const tokenizer = loadTokenizer(readFileSync(TOKENIZER, 'utf8'), config);
    const bpe = separatingTokens(rows, (code) => tokenizer.encode(code));
    expect(bpe.map((s) => s.replace(/\d+$/, (id) => JSON.stringify(tokenizer.decode([Number(id)]))))).toEqual(
      [],
    );
  });

  it('every method is valid Java and no comment or name gives the label away', async () => {
    const records = makeDemoDataset(DEMO_DATASET);
    for (const r of records) {
      const parsed = extractJavaMethods(`class Demo {\n${r.code}\n}`);
      if (!parsed.ok) throw new Error(`${parsed.message}\n${r.code}`);
      expect(parsed.methods).toHaveLength(1);
      expect(r.code).not.toMatch(/vulnerab|insecure|unsafe|\bfix|\bsafe\b|flaw|\bbad\b|\bgood\b/i);
    }
    // a vulnerable/fixed pair differs in more than one token
    for (let i = 0; i < records.length; i += 2) {
      const a = records[i].code.split(/\W+/);
      const b = records[i + 1].code.split(/\W+/);
      const diff = Math.abs(a.length - b.length) + a.filter((t, k) => b[k] !== t).length;
      expect(diff).toBeGreaterThan(1);
    }
  });
});
