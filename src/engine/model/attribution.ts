/**
 * Token attributions on the GPU, for a step's batch (packed as evaluation packs it), with the model's
 * own backward (`TrainStep.scoreInputGradient`): nothing is updated.
 *
 * Score: Σ weight · margin over a group's terms, margin = logit(vulnerable) − logit(not) — the
 * classification head's logit 1 − logit 0, or the " YES" − " NO" logit of the next-token objective —
 * i.e. the log-odds of the detector's probability.
 *
 * - 'grad' (gradient × input): per token, the L2 norm over the embedding dimension of
 *   d(score)/d(x0) ⊙ x0, x0 the embedding output (wte[id], + wpe[pos] with learned positions, + the
 *   token embedding's LoRA branch when adapted; rotary positions act later). Unsigned; one backward.
 * - 'ig' (integrated gradients): baseline = the pad token's embedding output at the same position
 *   (wte[pad] + wpe[pos]); per token Σ_d (x0 − baseline)·mean_k grad(baseline + α_k (x0 − baseline)),
 *   midpoint Riemann sum α_k = (k + ½)/steps. Signed (positive pushes toward "vulnerable"); the
 *   attributions sum to margin(x0) − margin(baseline) up to an O(1/steps²) error. steps + 2 passes
 *   (the input and the baseline are scored too, for that check).
 *
 * Each group gets its own backward: with block-diagonal ('packed') attention one group can hold every
 * function of the batch, since a function's tokens only reach its own score; with the paper's
 * cross-function attention, give each function its own group.
 */
import type { TrainStep } from './train-step.ts';

export type AttributionMethod = 'grad' | 'ig';

export const DEFAULT_IG_STEPS = 16;

export interface AttributionOptions {
  method: AttributionMethod;
  /** Integrated-gradients steps (default 16). */
  steps?: number;
  /** The baseline token of integrated gradients (the tokenizer's pad id). */
  baselineId: number;
  /** ntp: the answer tokens (vulnerable = yes). */
  answers?: { yes: number; no: number };
}

export interface ScoreTerm {
  /** cls: the batch's function index; ntp: the flattened token row of the prompt's last token. */
  at: number;
  weight: number;
}

export interface GroupAttribution {
  /** Each term's margin at the input. */
  margins: Float32Array;
  /** ig: each term's margin at the baseline. */
  baselineMargins?: Float32Array;
  /** Per token [T]: grad, ‖grad ⊙ x0‖₂ ≥ 0; ig, the signed integrated gradient. */
  tokens: Float64Array;
}

/** Attributions of each group's score for the step's current batch (`setBatch` first). */
export async function attributeBatch(
  step: TrainStep,
  groups: readonly (readonly ScoreTerm[])[],
  options: AttributionOptions,
): Promise<GroupAttribution[]> {
  const steps = options.steps ?? DEFAULT_IG_STEPS;
  if (options.method === 'ig' && (!Number.isInteger(steps) || steps < 1)) {
    throw new RangeError(`Integrated gradients need a whole number of steps ≥ 1 (got ${steps}).`);
  }
  const T = step.T;
  const x0 = await step.embed();
  const D = x0.length / T;
  const baseline =
    options.method === 'ig' ? await step.embed(new Int32Array(T).fill(options.baselineId)) : null;
  const out: GroupAttribution[] = [];
  for (const terms of groups) {
    const input = await step.scoreInputGradient(terms, { x0, answers: options.answers });
    const tokens = new Float64Array(T);
    if (!baseline) {
      for (let t = 0; t < T; t++) {
        let s = 0;
        for (let i = t * D; i < (t + 1) * D; i++) s += (input.grad[i] * x0[i]) ** 2;
        tokens[t] = Math.sqrt(s);
      }
      out.push({ margins: input.margins, tokens });
      continue;
    }
    const base = await step.scoreInputGradient(terms, { x0: baseline, answers: options.answers });
    const mean = new Float64Array(x0.length);
    const x = new Float32Array(x0.length);
    for (let k = 0; k < steps; k++) {
      const alpha = (k + 0.5) / steps;
      for (let i = 0; i < x.length; i++) x[i] = baseline[i] + alpha * (x0[i] - baseline[i]);
      const { grad } = await step.scoreInputGradient(terms, { x0: x, answers: options.answers });
      for (let i = 0; i < x.length; i++) mean[i] += grad[i];
    }
    for (let i = 0; i < x0.length; i++)
      tokens[Math.floor(i / D)] += ((x0[i] - baseline[i]) * mean[i]) / steps;
    out.push({ margins: input.margins, baselineMargins: base.margins, tokens });
  }
  return out;
}
