/**
 * Writes a labelled JSONL dataset as the PyTorch recipe's pre-tokenized splits
 * (`OUT/splits/{train,validation,test}.jsonl`: tokens, label, weight, cwe, example_index), encoded by
 * the lab's tokenizer code with a model's `tokenizer.json`, for scripts/demo-model/probe.py:
 *
 *     npx tsx scripts/demo-model/tokenize-splits.ts --model DIR [--data public/demo/java-vulns.jsonl] --out DIR
 *
 * The code is encoded as written (no comment stripping or whitespace collapsing), one method per line.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/io/tokenizer.ts';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && process.argv[i + 1]) return process.argv[i + 1];
  if (fallback === undefined) throw new Error(`--${name} is required`);
  return fallback;
}

const model = arg('model');
const data = arg('data', 'public/demo/java-vulns.jsonl');
const out = arg('out');
const tokenizer = loadTokenizer(
  readFileSync(join(model, 'tokenizer.json'), 'utf8'),
  readFileSync(join(model, 'tokenizer_config.json'), 'utf8'),
);
const splits = new Map<string, string[]>();
readFileSync(data, 'utf8')
  .split('\n')
  .filter((line) => line.trim())
  .forEach((line, index) => {
    const row = JSON.parse(line) as { code: string; target: number; cwe?: string; split: string };
    const entry = {
      tokens: tokenizer.encode(row.code),
      label: row.target,
      weight: 1,
      cwe: row.cwe,
      example_index: index,
    };
    splits.set(row.split, [...(splits.get(row.split) ?? []), JSON.stringify(entry)]);
  });
mkdirSync(join(out, 'splits'), { recursive: true });
for (const [split, lines] of splits)
  writeFileSync(join(out, 'splits', `${split}.jsonl`), lines.join('\n') + '\n');
console.log(`${out}/splits: ${[...splits].map(([s, l]) => `${s} ${l.length}`).join(', ')}`);
