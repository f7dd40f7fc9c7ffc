/**
 * Scale check of model IO (issue 4): a random checkpoint with WizardCoder-1B's exact shapes (F16
 * safetensors, ≈ 2.3 GB, written once to the OS temp folder, not committed) loaded and quantized to q4_0
 * while streaming; peak RSS must stay well under 1.5 GB. Reports load MB/s against a plain sequential
 * read of the same file, and the bytes handed to the GPU sink against the memory planner's figure.
 * Quick mode runs the same path on the tiny demo shapes.
 */
import { runScaleCheck } from '../src/io/node-scale-check.ts';
import type { Bench } from './harness.ts';

const MB = 1e6;

export const bench: Bench = {
  name: 'model-load',
  description:
    'streaming load + q4_0 quantization of a 1B-shape checkpoint: peak RSS, MB/s, bytes vs planner',
  async run({ quick }) {
    const preset = quick ? 'demo' : 'WizardLMTeam/WizardCoder-1B-V1.0';
    const r = await runScaleCheck(preset, 'q4_0');
    const peakMB = r.peakRssBytes / MB;
    return {
      rows: [
        {
          preset,
          'file MB': r.fileBytes / MB,
          'load MB/s': r.loadMBps,
          'sequential read MB/s': r.sequentialReadMBps,
          'peak RSS MB': peakMB,
          'baseline RSS MB': r.baselineRssBytes / MB,
          'uploaded MB': r.uploadedBytes / MB,
          'planner MB': r.plannedWeightBytes / MB,
        },
      ],
      summary: { ...r, target: 'peak RSS < 1500 MB for the 1B shapes at q4_0', withinTarget: peakMB < 1500 },
    };
  },
};
