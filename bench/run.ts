/**
 * `npm run bench [-- NAME… --quick --kernels cpu|gpu --shapes SET --out DIR]`: runs the benchmarks
 * under bench/, prints a table per benchmark and writes <DIR or bench/results>/<name>.json (machine,
 * adapter, kernel set, figures). `--kernels` sets the context's kernel set (default: the adapter's;
 * matmul, linear and attention time both sets anyway). `--shapes SET` picks another set of workloads
 * of the benches that list it (train-step: `wizardcoder`), written as <name>-<SET>.json. Timings live
 * here, never in tests.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseKernelSet, setKernelOverride } from '../src/engine/gpu/context.ts';
import { createNodeContext } from '../src/engine/gpu/node.ts';
import { machine, printTable, type Bench } from './harness.ts';

const args = process.argv.slice(2);
/** `--name value` or `--name=value`; the pair is removed from args. */
function option(name: string): string | undefined {
  const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return undefined;
  const value = args[i] === `--${name}` ? args[i + 1] : args[i].slice(name.length + 3);
  args.splice(i, args[i] === `--${name}` ? 2 : 1);
  return value;
}
const kernelsArg = option('kernels');
const outArg = option('out');
const shapes = option('shapes');
const quick = args.includes('--quick');
const only = args.filter((a) => !a.startsWith('--'));
if (kernelsArg !== undefined) {
  const kernels = parseKernelSet(kernelsArg);
  if (!kernels) {
    console.error(`--kernels must be cpu or gpu (got "${kernelsArg}")`);
    process.exit(2);
  }
  setKernelOverride(kernels);
}

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
if (shapes !== undefined) {
  const without = benches.filter((b) => !b.shapes?.includes(shapes));
  if (without.length > 0) {
    console.error(
      `--shapes ${shapes}: not a workload set of ${without.map((b) => b.name).join(', ')} ` +
        `(sets: ${benches.map((b) => `${b.name}: ${b.shapes?.join(', ') || 'none'}`).join('; ')})`,
    );
    process.exit(2);
  }
}

const ctx = await createNodeContext();
const resultsDir = outArg ? pathToFileURL(resolve(outArg) + '/') : new URL('results/', benchDir);
mkdirSync(resultsDir, { recursive: true });
let failed = false;
for (const bench of benches) {
  console.log(
    `\n## ${bench.name}${shapes ? ` --shapes ${shapes}` : ''} — ${bench.description}${quick ? ' (quick)' : ''} [kernels: ${ctx.kernels}]`,
  );
  try {
    const outcome = await bench.run({ ctx, quick, shapes });
    printTable(outcome.rows);
    const result = {
      name: bench.name,
      description: bench.description,
      date: new Date().toISOString(),
      quick,
      ...(shapes ? { shapes } : {}),
      machine: machine(),
      adapter: ctx.adapter,
      kernels: ctx.kernels,
      rows: outcome.rows,
      summary: outcome.summary ?? {},
    };
    const path = new URL(`${bench.name}${shapes ? `-${shapes}` : ''}.json`, resultsDir);
    writeFileSync(path, JSON.stringify(result, null, 2) + '\n');
    console.log(`→ ${path.pathname}`);
  } catch (error) {
    failed = true;
    console.error(`${bench.name} failed:`, error);
  }
}
ctx.destroy();
process.exit(failed ? 1 : 0);
