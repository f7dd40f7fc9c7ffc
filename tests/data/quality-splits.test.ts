import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { qualityReport } from '../../src/data/quality';
import { applySplits, assignSplits } from '../../src/data/splits';
import { ByteTokenizer, tokenizeRecords } from '../../src/data/tokenize';
import type { DataRecord } from '../../src/data/types';

function rec(code: string, label: 0 | 1, extra: Partial<DataRecord> = {}): DataRecord {
  return { code, label, ...extra };
}

describe('qualityReport', () => {
  it('counts balance, exact/normalized/conflicting duplicates and CWEs', () => {
    const records = [
      rec('int f() { return 1; }', 1, { cwe: 'CWE-89' }),
      rec('int f() { return 1; }', 1, { cwe: 'CWE-89' }), // exact dup
      rec('int f(){\n  return 1; // one\n}', 0, { cwe: 'CWE-89' }), // normalized dup, conflicting label
      rec('int g() { return 2; }', 0),
      rec('int h() { return 3; }', 0, { cwe: 'CWE-79' }),
    ];
    const r = qualityReport(records, { lengths: [5, 5, 5, 100, 3000], contextLength: 1024 });
    expect([r.total, r.positives, r.negatives]).toEqual([5, 2, 3]);
    expect(r.exactDuplicates).toEqual({ groups: 1, extraCopies: 1 });
    expect(r.normalizedDuplicates).toEqual({ groups: 1, extraCopies: 2 });
    expect(r.conflictingLabels).toMatchObject({ groups: 1, records: 3, examples: [[0, 1, 2]] });
    expect(r.perCwe).toEqual([
      { cwe: 'CWE-89', positives: 2, negatives: 1 },
      { cwe: '(none)', positives: 0, negatives: 1 },
      { cwe: 'CWE-79', positives: 0, negatives: 1 },
    ]);
    expect(r.lengths).toMatchObject({ median: 5, max: 3000, truncatedCount: 1, truncatedShare: 0.2 });
    expect(r.lengths!.histogram.reduce((a, h) => a + h.count, 0)).toBe(5);
    expect(r.lengths!.histogram.find((h) => h.from === 2048)!.count).toBe(1);
    const codes = r.warnings.map((w) => w.code);
    expect(codes).toContain('conflicting-labels');
    expect(codes).toContain('truncation');
    expect(codes).not.toContain('one-class');
  });

  it('warns: one class (AUC undefined), tiny test, heavy imbalance, cross-split leakage', () => {
    const one = qualityReport([rec('a', 1), rec('b', 1)]);
    expect(one.warnings.map((w) => [w.code, w.severity])).toContainEqual(['one-class', 'error']);
    expect(one.warnings.find((w) => w.code === 'one-class')!.message).toMatch(/AUC is undefined/);

    const records: DataRecord[] = [];
    for (let i = 0; i < 300; i++)
      records.push(rec(`int f${i}() {}`, i % 40 === 0 ? 1 : 0, { split: i < 290 ? 'train' : 'test' }));
    records.push(rec('int f1() {}', 0, { split: 'test' })); // same body as a train record
    const r = qualityReport(records, { tokenizer: new ByteTokenizer(), contextLength: 2048 });
    const codes = r.warnings.map((w) => w.code);
    expect(codes).toEqual(
      expect.arrayContaining(['imbalance', 'tiny-test', 'one-class-split', 'cross-split-duplicates']),
    );
    expect(r.warnings.find((w) => w.code === 'imbalance')!.message).toMatch(/focal loss/);
    expect(r.perSplit!.find((s) => s.split === 'test')).toMatchObject({ size: 11, positives: 0 });
    expect(r.lengths!.median).toBe(new TextEncoder().encode('int f100() {}').length);
  });
});

describe('assignSplits', () => {
  const records = (n: number, groups: number): DataRecord[] =>
    Array.from({ length: n }, (_, i) =>
      rec(`void m${i}() { call(${i}); }`, (i % 3 === 0 ? 1 : 0) as 0 | 1, {
        commit: `c${i % groups}`,
        project: `p${i % 7}`,
      }),
    );

  it('stratified: sizes follow the fractions and each split keeps the class balance; seeded', () => {
    const rs = records(1000, 50);
    const a = assignSplits(rs, { strategy: 'stratified', seed: 3 });
    const s = Object.fromEntries(a.summary.map((x) => [x.split, x]));
    expect(s.train.size).toBeGreaterThanOrEqual(798);
    expect(s.test.size).toBeGreaterThanOrEqual(99);
    for (const x of a.summary) expect(Math.abs(x.positiveShare - 334 / 1000)).toBeLessThan(0.01);
    expect(assignSplits(rs, { strategy: 'stratified', seed: 3 }).assignment).toEqual(a.assignment);
    expect(assignSplits(rs, { strategy: 'stratified', seed: 4 }).assignment).not.toEqual(a.assignment);
  });

  it('grouped: no commit, project or duplicate body on two sides', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 120 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.constantFrom('commit' as const, 'project' as const),
        (n, groups, seed, groupBy) => {
          const rs = records(n, groups);
          rs.push(rec('void m0() { call(0); }', 0, { commit: 'other', project: 'other' })); // dup of record 0
          const { assignment, summary } = assignSplits(rs, { strategy: 'grouped', groupBy, seed });
          const where = new Map<string, string>();
          rs.forEach((r, i) => {
            const k = r[groupBy]!;
            if (where.has(k)) expect(where.get(k)).toBe(assignment[i]);
            where.set(k, assignment[i]);
          });
          expect(assignment[rs.length - 1]).toBe(assignment[0]);
          expect(summary.reduce((a, x) => a + x.size, 0)).toBe(rs.length);
        },
      ),
      { numRuns: 100 },
    );
    const big = assignSplits(records(1000, 100), { strategy: 'grouped', seed: 1 });
    const sizes = Object.fromEntries(big.summary.map((x) => [x.split, x.size]));
    expect(sizes.train).toBeGreaterThan(760);
    expect(sizes.test).toBeGreaterThan(80);
    expect(big.summary.find((x) => x.split === 'test')!.groups).toBeGreaterThan(5);
  });

  it('field: keeps given splits, fills missing ones, and auto picks it', () => {
    const rs = [rec('a', 1, { split: 'test' }), rec('b', 0, { split: 'train' }), rec('c', 1), rec('d', 0)];
    const r = assignSplits(rs, { seed: 1 });
    expect(r.strategy).toBe('field');
    expect(r.assignment.slice(0, 2)).toEqual(['test', 'train']);
    expect(r.notes[0]).toMatch(/2 record/);
    expect(applySplits(rs, r.assignment).every((x) => x.split)).toBe(true);
    expect(assignSplits([rec('a', 1)], { seed: 1 }).strategy).toBe('stratified');
  });
});

describe('tokenizeRecords', () => {
  const tok = new ByteTokenizer();
  const rs = [rec('abcdef', 1, { weight: 3, split: 'train' }), rec('ab', 0), rec('abcdefgh', 0)];
  it('applies keep-head / keep-tail / drop with counts and reports throughput', () => {
    const head = tokenizeRecords(rs, tok, { maxTokens: 4 });
    expect(head.examples.map((e) => String.fromCharCode(...e.tokens))).toEqual(['abcd', 'ab', 'abcd']);
    expect(head.examples[0]).toMatchObject({
      label: 1,
      weight: 3,
      exampleIndex: 0,
      split: 'train',
      originalLength: 6,
    });
    expect(head.stats).toMatchObject({
      functions: 3,
      kept: 3,
      truncated: 2,
      dropped: 0,
      tokens: 10,
      originalTokens: 16,
    });
    expect(head.stats.tokensPerSecond).toBeGreaterThan(0);
    const tail = tokenizeRecords(rs, tok, { maxTokens: 4, truncation: 'keep-tail' });
    expect(tail.examples.map((e) => String.fromCharCode(...e.tokens))).toEqual(['cdef', 'ab', 'efgh']);
    const drop = tokenizeRecords(rs, tok, { maxTokens: 4, truncation: 'drop' });
    expect(drop.examples.map((e) => e.exampleIndex)).toEqual([1]);
    expect(drop.stats).toMatchObject({ kept: 1, dropped: 2, truncated: 0 });
    const norm = tokenizeRecords([rec('a  /* x */  b', 1)], tok, {
      maxTokens: 100,
      normalize: { stripComments: true, collapseWhitespace: true },
    });
    expect(String.fromCharCode(...norm.examples[0].tokens)).toBe('a b');
  });
});
