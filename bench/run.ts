/**
 * `npm run bench [-- NAME… --quick]`: runs the benchmarks under bench/, prints a table per benchmark
 * and writes bench/results/<name>.json (machine, adapter, figures). Timings live here, never in tests.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createNodeContext } from '../src/engine/gpu/node.ts';
import { machine, printTable, type Bench } from './harness.ts';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.filter((a) => !a.startsWith('--'));

const benchDir = new URL('./', import.meta.url);
const files = readdirSync(benchDir).filter((f) => f.endsWith('.bench.ts'));
const benches: Bench[] = [];
for (const file of files.sort()) {
  const module = (await import(new URL(file, benchDir).href)) as { bench: Bench };
  if (only.length === 0 || only.includes(module.bench.name)) benches.push(module.bench);
}
if (benches.length === 0) {
  console.error(`No benchmark matches ${only.join(', ')}; available: ${files.join(', ')}`);
  process.exit(2);
}

const ctx = await createNodeContext();
mkdirSync(new URL('results/', benchDir), { recursive: true });
let failed = false;
for (const bench of benches) {
  console.log(`\n## ${bench.name} — ${bench.description}${quick ? ' (quick)' : ''}`);
  try {
    const outcome = await bench.run({ ctx, quick });
    printTable(outcome.rows);
    const result = {
      name: bench.name,
      description: bench.description,
      date: new Date().toISOString(),
      quick,
      machine: machine(),
      adapter: ctx.adapter,
      rows: outcome.rows,
      summary: outcome.summary ?? {},
    };
    const path = new URL(`results/${bench.name}.json`, benchDir);
    writeFileSync(path, JSON.stringify(result, null, 2) + '\n');
    console.log(`→ ${path.pathname}`);
  } catch (error) {
    failed = true;
    console.error(`${bench.name} failed:`, error);
  }
}
ctx.destroy();
process.exit(failed ? 1 : 0);
