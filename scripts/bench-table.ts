/**
 * `npx tsx scripts/bench-table.ts DIR [OUT.md]`: the bench/run.ts JSON files in DIR as Markdown — one
 * section per benchmark with its adapter, kernel set, date, summary and rows — and, where DIR holds
 * `train-step --shapes wizardcoder[-1b|-3b]` results (of each kernel set) or the PyTorch peer's
 * (recipes/torch/bench_step.py, name train-step-torch), first a table of the training step side by
 * side with the ratio WebGPU gpu set / PyTorch fp32. A JSON `{ "name", "skipped": reason }` is listed
 * under "Skipped or failed". Used by scripts/gpu-bench.sh; prints to stdout unless OUT.md is given.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface Result {
  name: string;
  description: string;
  date: string;
  quick: boolean;
  /** bench/run.ts --shapes. */
  shapes?: string;
  /** node (bench/run.ts) or runtime (bench_step.py: python and torch versions). */
  machine: { cpu: string; cores: number; node?: string; runtime?: string; commit: string };
  adapter: { vendor: string; architecture: string; device: string; description: string };
  kernels?: string;
  rows: Record<string, string | number>[];
  summary: Record<string, unknown>;
}

type Row = Result['rows'][number];

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
const mib = (value: string | number | undefined): string =>
  typeof value === 'number' ? value.toFixed(0) : (value ?? '—');

/**
 * The training step per workload: tokens/s of both WebGPU kernel sets and both PyTorch precisions,
 * the ratio gpu set / PyTorch fp32, and the memory figures of each side.
 */
function stepTable(webgpu: Result[], torch: Result[]): string[] {
  const labels = [
    ...new Set([...webgpu, ...torch].flatMap((r) => r.rows.map((row) => String(row.workload)))),
  ];
  const find = (results: Result[], label: string, key: string, value: string): Row | undefined => {
    for (const r of results) {
      for (const row of r.rows) {
        const v = key === 'kernels' ? (row.kernels ?? r.kernels) : row[key];
        if (row.workload === label && String(v).startsWith(value)) return row;
      }
    }
    return undefined;
  };
  const speed = (row: Row | undefined): string =>
    !row ? '—' : row.error !== undefined ? `error: ${String(row.error).slice(0, 80)}` : cell(row['tokens/s']);
  const out = [
    '| workload | WebGPU cpu set tok/s | WebGPU gpu set tok/s | PyTorch fp32 tok/s | PyTorch bf16 tok/s | gpu set / PyTorch fp32 | WebGPU MiB (plan / allocated) | PyTorch max allocated MiB (fp32 / bf16) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const label of labels) {
    const cpu = find(webgpu, label, 'kernels', 'cpu');
    const gpu = find(webgpu, label, 'kernels', 'gpu');
    const f32 = find(torch, label, 'precision', 'fp32');
    const bf16 = find(torch, label, 'precision', 'bf16');
    const ratio =
      typeof gpu?.['tokens/s'] === 'number' && typeof f32?.['tokens/s'] === 'number'
        ? (gpu['tokens/s'] / f32['tokens/s']).toFixed(3)
        : '—';
    const mem = gpu ?? cpu;
    const device = f32?.device ?? bf16?.device;
    out.push(
      `| ${label}${device ? ` (PyTorch on ${device})` : ''} | ${speed(cpu)} | ${speed(gpu)} | ${speed(f32)} | ${speed(bf16)} | ${ratio} | ${mib(mem?.['plan MiB'])} / ${mib(mem?.['allocated MiB'])} | ${mib(f32?.['max allocated MiB'])} / ${mib(bf16?.['max allocated MiB'])} |`,
    );
  }
  return out;
}

const files = readdirSync(dir, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.json'))
  .sort();
const results: [string, Result][] = [];
const skipped: string[] = [];
for (const file of files) {
  const r = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Result & { skipped?: string };
  if (typeof r.skipped === 'string') skipped.push(`- ${r.name}: skipped — ${r.skipped}`);
  else if (Array.isArray(r.rows)) results.push([file, r]);
}
const lines: string[] = [];
const shaped = results.map(([, r]) => r).filter((r) => r.name === 'train-step' && r.shapes);
const torch = results.map(([, r]) => r).filter((r) => r.name === 'train-step-torch');
if (shaped.length > 0 || torch.length > 0) {
  const quick = [...shaped, ...torch].some((r) => r.quick);
  lines.push(
    `## Training step: WebGPU (both kernel sets) vs PyTorch${quick ? ' (quick: the local stand-in)' : ''}`,
    '',
    'One LoRA step (forward, weighted focal loss, backward, clipping, AdamW) on one packed batch; tokens/s = ' +
      'pack length (padding included) / median ms per step. WebGPU: `bench/run.ts train-step --shapes ' +
      'wizardcoder` (memory: planMemory / buffers allocated); PyTorch: recipes/torch/bench_step.py on the ' +
      'same workloads (fp32 with TF32 off, bf16 autocast; torch.cuda.max_memory_allocated).',
    '',
    ...stepTable(shaped, torch),
    '',
  );
}
if (skipped.length > 0) lines.push('## Skipped or failed', '', ...skipped, '');
for (const [file, r] of results) {
  const a = r.adapter;
  const { workloads, ...summary } = r.summary;
  const runtime = r.machine.runtime ?? `node ${r.machine.node}`;
  lines.push(
    `## ${r.name}${r.shapes ? ` --shapes ${r.shapes}` : ''}${r.quick ? ' (quick)' : ''} — ${file}`,
    '',
    r.description,
    '',
    `- date: ${r.date}, commit ${r.machine.commit}, ${runtime}`,
    `- adapter: ${[a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' · ')}`,
    r.name === 'train-step-torch'
      ? `- CPU: ${r.machine.cpu} ×${r.machine.cores}`
      : `- context kernel set: ${r.kernels ?? 'cpu (before kernel sets)'}; CPU: ${r.machine.cpu} ×${r.machine.cores}`,
    `- summary: \`${JSON.stringify(summary)}\`${workloads ? ' (workloads: in the JSON)' : ''}`,
    '',
    ...table(r.rows),
    '',
  );
}
const text = lines.join('\n');
if (out) writeFileSync(out, text);
else console.log(text);
