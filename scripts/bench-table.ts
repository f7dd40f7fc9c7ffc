/**
 * `npx tsx scripts/bench-table.ts DIR [OUT.md]`: the bench/run.ts JSON files in DIR as Markdown — one
 * section per benchmark with its adapter, kernel set, date, summary and rows. Used by
 * scripts/gpu-bench.sh; prints to stdout unless OUT.md is given.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface Result {
  name: string;
  description: string;
  date: string;
  quick: boolean;
  machine: { cpu: string; cores: number; node: string; commit: string };
  adapter: { vendor: string; architecture: string; device: string; description: string };
  kernels?: string;
  rows: Record<string, string | number>[];
  summary: Record<string, unknown>;
}

const cell = (value: string | number | undefined): string =>
  typeof value === 'number' ? (Number.isInteger(value) ? String(value) : value.toFixed(2)) : (value ?? '');

function table(rows: Result['rows']): string[] {
  if (rows.length === 0) return ['(no rows)'];
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  return [
    `| ${columns.join(' | ')} |`,
    `| ${columns.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${columns.map((c) => cell(row[c])).join(' | ')} |`),
  ];
}

const [dir, out] = process.argv.slice(2);
if (!dir) {
  console.error('Usage: npx tsx scripts/bench-table.ts DIR [OUT.md]');
  process.exit(2);
}
const files = readdirSync(dir, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.json'))
  .sort();
const lines: string[] = [];
for (const file of files) {
  const r = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Result;
  if (!Array.isArray(r.rows)) continue;
  const a = r.adapter;
  lines.push(
    `## ${r.name}${r.quick ? ' (quick)' : ''} — ${file}`,
    '',
    r.description,
    '',
    `- date: ${r.date}, commit ${r.machine.commit}, node ${r.machine.node}`,
    `- adapter: ${[a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' · ')}`,
    `- context kernel set: ${r.kernels ?? 'cpu (before kernel sets)'}; CPU: ${r.machine.cpu} ×${r.machine.cores}`,
    `- summary: \`${JSON.stringify(r.summary)}\``,
    '',
    ...table(r.rows),
    '',
  );
}
const text = lines.join('\n');
if (out) writeFileSync(out, text);
else console.log(text);
