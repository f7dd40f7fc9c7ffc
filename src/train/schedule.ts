import type { RunConfig } from './config.ts';

/**
 * Learning rate at an optimizer step (0-based), as transformers' get_cosine_schedule_with_warmup /
 * get_linear_schedule_with_warmup: linear warmup from 0, then cosine or linear decay to 0.
 */
export function learningRate(
  schedule: RunConfig['schedule'],
  peak: number,
  step: number,
  totalSteps: number,
): number {
  const warmup = Math.round(schedule.warmupRatio * totalSteps);
  if (step < warmup) return (peak * step) / Math.max(1, warmup);
  if (schedule.kind === 'constant') return peak;
  const progress = (step - warmup) / Math.max(1, totalSteps - warmup);
  if (schedule.kind === 'linear') return peak * Math.max(0, 1 - progress);
  return peak * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
