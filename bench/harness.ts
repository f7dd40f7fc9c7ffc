import { execSync } from 'node:child_process';
import { cpus, totalmem, type as osType, release } from 'node:os';
import type { GpuContext } from '../src/engine/gpu/index.ts';

export interface BenchEnv {
  ctx: GpuContext;
  /** Smaller sizes and fewer repetitions (CI smoke run). */
  quick: boolean;
  /** `--shapes NAME`: another set of workloads, one the bench lists in `Bench.shapes`. */
  shapes?: string;
}

export interface BenchRow {
  [column: string]: string | number;
}

export interface BenchOutcome {
  /** Printed as a table. */
  rows: BenchRow[];
  /** Saved in the JSON next to the rows (targets, ratios, notes). */
  summary?: Record<string, unknown>;
}

export interface Bench {
  name: string;
  description: string;
  /** Names `--shapes` may pick for this bench (none: it only has its default workloads). */
  shapes?: readonly string[];
  run(env: BenchEnv): Promise<BenchOutcome>;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs `once` `warmup + reps` times and returns the median milliseconds of the timed repetitions. */
export async function timeMedian(once: () => Promise<void>, reps: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const start = performance.now();
    await once();
    times.push(performance.now() - start);
  }
  return median(times);
}

export function machine() {
  let commit = 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    // not a git checkout
  }
  return {
    os: `${osType()} ${release()}`,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    commit,
  };
}

export function printTable(rows: BenchRow[]): void {
  if (rows.length === 0) return;
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const cell = (value: string | number | undefined) =>
    typeof value === 'number' ? (Number.isInteger(value) ? String(value) : value.toFixed(2)) : (value ?? '');
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padStart(widths[i])).join('  ');
  console.log(line(columns));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const row of rows) console.log(line(columns.map((c) => cell(row[c]))));
}
