/** The Data panel's split choice: the default leaves records to the run (as the CLI); a chosen split is fixed in them. */
import { describe, expect, it } from 'vitest';
import { assignSplits } from '../../src/data/splits.ts';
import type { DataRecord } from '../../src/data/types.ts';
import { splitDataset } from '../../src/worker/dataset-splits.ts';

const records: DataRecord[] = Array.from({ length: 60 }, (_, i) => ({
  code: `void f${i}() { return ${i}; }`,
  label: (i % 3 === 0 ? 1 : 0) as 0 | 1,
  project: `p${i % 7}`,
}));

describe('splitDataset', () => {
  it('by default leaves the records as imported, so a run splits them with its own seed as the CLI does', () => {
    const { records: out, splits, info } = splitDataset(records, { strategy: 'auto', seed: 9 });
    expect(info).toMatchObject({ strategy: 'stratified', fixed: false, seed: 9 });
    expect(out).toEqual(records);
    expect(out.every((r) => r.split === undefined)).toBe(true);
    // The preview is what a run with seed 9 (and the CLI with --seed 9) will make.
    expect(splits.assignment).toEqual(assignSplits(records, { strategy: 'auto', seed: 9 }).assignment);
  });

  it('a split chosen by hand is written into the records: every run uses it, whatever its seed', () => {
    const {
      records: out,
      splits,
      info,
    } = splitDataset(records, {
      strategy: 'grouped',
      groupBy: 'project',
      seed: 5,
      fractions: { train: 0.6, validation: 0.2, test: 0.2 },
    });
    expect(info).toMatchObject({ strategy: 'grouped', groupBy: 'project', fixed: true });
    expect(out.map((r) => r.split)).toEqual(splits.assignment);
    for (const seed of [1, 42]) {
      expect(assignSplits(out, { strategy: 'auto', seed }).assignment).toEqual(splits.assignment);
    }
    const byProject = new Map<string, Set<string>>();
    out.forEach((r) => byProject.set(r.project!, (byProject.get(r.project!) ?? new Set()).add(r.split!)));
    expect([...byProject.values()].every((s) => s.size === 1)).toBe(true);
    expect(splits.summary.find((s) => s.split === 'train')!.groups).toBeGreaterThan(0);
    // The imported records are not changed (a later re-split starts from them).
    expect(records.every((r) => r.split === undefined)).toBe(true);
  });

  it('other shares with the default strategy are fixed too', () => {
    const { info, splits } = splitDataset(records, {
      strategy: 'auto',
      seed: 3,
      fractions: { train: 0.5, validation: 0.25, test: 0.25 },
    });
    expect(info.fixed).toBe(true);
    expect(splits.summary.find((s) => s.split === 'train')!.size).toBe(30);
  });

  it('keeps a dataset’s own split column by default', () => {
    const withField = records.map((r, i) => ({
      ...r,
      split: (['train', 'validation', 'test'] as const)[i % 3],
    }));
    const { info, splits } = splitDataset(withField);
    expect(info).toMatchObject({ strategy: 'field', fixed: false, seed: 42 });
    expect(splits.assignment).toEqual(withField.map((r) => r.split));
  });
});
