import { readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { importDataset } from '../../src/data/import';
import { extractJavaMethods } from '../../src/data/java';
import { qualityReport } from '../../src/data/quality';
import { ByteTokenizer } from '../../src/data/tokenize';
import { makeDemoDataset, toJsonl } from '../../scripts/make-demo-dataset';

const FILE = 'public/demo/java-vulns.jsonl';

describe('demo dataset', () => {
  it('is what the seeded generator produces and stays under 2 MB', () => {
    const text = readFileSync(FILE, 'utf8');
    expect(statSync(FILE).size).toBeLessThan(2 * 1024 * 1024);
    expect(toJsonl(makeDemoDataset({ seed: 2401, pairs: 260 }))).toBe(text);
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
    expect(q.lengths!.max).toBeGreaterThan(2500);
  });

  it('every method is valid Java and no comment or name gives the label away', async () => {
    const records = makeDemoDataset({ seed: 2401, pairs: 260 });
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
