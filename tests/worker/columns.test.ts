/** Column names for the Data panel's manual mapping, read from the head of the first tabular file. */
import { describe, expect, it } from 'vitest';
import { tabularColumns } from '../../src/worker/columns.ts';
import { writeParquet } from '../fixtures/data/parquet-writer.ts';

const file = (name: string, text: string | Uint8Array) => ({ name, blob: new Blob([text as BlobPart]) });

describe('tabularColumns', () => {
  it('reads a CSV header (quoted, with the importer’s delimiter rule) and a TSV header', async () => {
    expect(await tabularColumns([file('a.csv', '"source code",is_bad,cwe\n"x, y",1,CWE-89\n')])).toEqual([
      'source code',
      'is_bad',
      'cwe',
    ]);
    expect(await tabularColumns([file('a.csv', 'func;target\nx;1\n')])).toEqual(['func', 'target']);
    expect(await tabularColumns([file('a.tsv', 'func\ttarget\nx\t1\n')])).toEqual(['func', 'target']);
  });

  it('merges the keys of the first JSON records', async () => {
    const jsonl = '{"func": "a", "target": 1}\n{"func": "b", "target": 0, "project": "p"}\n';
    expect(await tabularColumns([file('d.jsonl', jsonl)])).toEqual(['func', 'target', 'project']);
    expect(await tabularColumns([file('d.json', '[{"code": "a", "vul": 1}]')])).toEqual(['code', 'vul']);
  });

  it('reads a Parquet schema from the footer', async () => {
    const bytes = writeParquet([
      { name: 'snippet', type: 'string', values: ['a', 'b'] },
      { name: 'label', type: 'int32', values: [0, 1] },
    ]);
    expect(await tabularColumns([file('d.parquet', bytes)])).toEqual(['snippet', 'label']);
  });

  it('takes the first tabular file of several, and has none for Java files or unreadable data', async () => {
    expect(await tabularColumns([file('A.java', 'class A {}'), file('b.csv', 'code,label\n')])).toEqual([
      'code',
      'label',
    ]);
    expect(await tabularColumns([file('A.java', 'class A {}')])).toBeUndefined();
    expect(await tabularColumns([file('d.parquet', 'not parquet')])).toBeUndefined();
  });

  it('reads only whole lines of a large file', async () => {
    const row = JSON.stringify({ code: 'x'.repeat(1000), label: 1 }) + '\n';
    const big = row.repeat(1200) + '{"code": "cut';
    expect(await tabularColumns([file('big.jsonl', big)])).toEqual(['code', 'label']);
  });
});
