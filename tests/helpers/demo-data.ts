import { readFileSync } from 'node:fs';
import { importDataset } from '../../src/data/import.ts';
import type { DataRecord } from '../../src/data/types.ts';

/**
 * The first lines of each split of the demo dataset as JSONL (`train` training functions, `others`
 * validation and test functions): small runs that still have both classes everywhere.
 */
export function demoSliceJsonl(train: number, others: number): string {
  const lines = readFileSync('public/demo/java-vulns.jsonl', 'utf8').trim().split('\n');
  return (
    ['train', 'validation', 'test']
      .flatMap((split) =>
        lines
          .filter((l) => (JSON.parse(l) as { split: string }).split === split)
          .slice(0, split === 'train' ? train : others),
      )
      .join('\n') + '\n'
  );
}

/** `demoSliceJsonl` imported as records. */
export async function demoSlice(train: number, others: number): Promise<DataRecord[]> {
  return (await importDataset({ name: 'slice.jsonl', data: demoSliceJsonl(train, others) })).records;
}
