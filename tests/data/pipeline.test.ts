import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  importDataset,
  assignSplits,
  tokenizeRecords,
  makeBatches,
  ByteTokenizer,
  qualityReport,
} from '../../src/data';

describe('data pipeline end to end', () => {
  it('demo file → import → grouped split → tokenize → packed batches that map back to the records', async () => {
    const r = await importDataset({
      name: 'java-vulns.jsonl',
      data: new Blob([readFileSync('public/demo/java-vulns.jsonl')]),
    });
    const split = assignSplits(r.records, { strategy: 'grouped', groupBy: 'project', seed: 9 });
    const q = qualityReport(r.records, { splits: split.assignment });
    expect(q.crossSplitDuplicates.groups).toBe(0);
    const train = split.assignment.flatMap((s, i) => (s === 'train' ? [i] : []));
    const L = 448; // shorter than many methods (median 468 bytes before collapsing whitespace): some are truncated
    const { examples, stats } = tokenizeRecords(r.records, new ByteTokenizer(), {
      maxTokens: L - 1,
      truncation: 'keep-tail',
      indices: train,
      normalize: { collapseWhitespace: true },
    });
    expect(stats.kept).toBe(train.length);
    expect(stats.truncated).toBeGreaterThan(0);
    const { batches, stats: bs } = makeBatches(examples, {
      mode: 'packed',
      packLength: L,
      separatorId: 256,
      padId: 257,
      seed: 3,
      epoch: 0,
      rowsPerBatch: 4,
    });
    expect(bs.functions).toBe(train.length);
    expect(bs.wastedShare).toBeLessThan(0.1);
    const seen = new Set<number>();
    for (const b of batches)
      for (const f of b.functions) {
        // exampleIndex is the record index that tokenizeRecords carried through
        seen.add(f.exampleIndex);
        expect(r.records[f.exampleIndex].label).toBe(f.label);
        expect(split.assignment[f.exampleIndex]).toBe('train');
        // the head reads the last code token: with keep-tail it is the function's closing brace
        expect(String.fromCharCode(b.inputIds[f.last])).toBe('}');
      }
    expect(seen.size).toBe(train.length);
  });
});
