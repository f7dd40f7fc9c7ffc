/**
 * A realistic length distribution for vulnerability datasets, for the packing benchmark and tests:
 * log-normal with median ≈ 250 BPE tokens and p90 ≈ 900, which also reproduces the paper's shares
 * beyond 512 / 1024 / 2048 tokens (~22% / ~8% / ~2%) and a tail beyond 2048.
 */
import { Rng } from '../shared/random.ts';

export interface LengthDistribution {
  median?: number;
  p90?: number;
  min?: number;
  max?: number;
}

const Z90 = 1.2815515655446004;

export function sampleFunctionLengths(n: number, seed: number, dist: LengthDistribution = {}): number[] {
  const median = dist.median ?? 250;
  const p90 = dist.p90 ?? 900;
  const min = dist.min ?? 8;
  const max = dist.max ?? 16384;
  const mu = Math.log(median);
  const sigma = Math.log(p90 / median) / Z90;
  const rng = new Rng(seed);
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++)
    out[i] = Math.min(max, Math.max(min, Math.round(Math.exp(mu + sigma * rng.normal()))));
  return out;
}

/** The q-quantile (0..1) of a list of numbers (nearest rank). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
