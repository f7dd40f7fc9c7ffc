/**
 * Float64 reference of input attributions: the score's gradient with respect to the embedding output
 * x0 = wte[ids] + wpe[pos] [T, D], gradient × input and integrated gradients, for tiny models (tests).
 *
 * It composes the float64 model of model.ts unchanged: a forward from an arbitrary x0 is the same
 * model with one extra vocabulary row per token holding that token's x0 (ids V..V+T−1) and an all-zero
 * position table, so `forwardRef` computes the model at x0 and `backwardRef` leaves d(score)/d(x0[t])
 * in the extra row V+t (each is used by exactly one token). The extra rows only add logit columns the
 * next-token score never reads, so the tied lm_head is unchanged where it matters.
 *
 * Score (the GPU's `TrainStep.scoreInputGradient`): Σ weight · margin over the terms, margin =
 * logit(vulnerable) − logit(not) — for cls the head's logit 1 − logit 0 of function `at`, for ntp the
 * " YES" − " NO" logit at token row `at`. The margin is the log-odds of the detector's probability
 * (p = sigmoid(margin)).
 */
import { InternalError } from '../errors.ts';
import { resolveConfig } from '../model/config.ts';
import {
  backwardRef,
  forwardRef,
  type GptBigCodeSpec as ModelSpec,
  type Objective,
  type PackedBatch,
  type ParamMap,
} from './model.ts';

export interface ScoreTermRef {
  /** cls: the batch's function index; ntp: the flattened token row. */
  at: number;
  weight: number;
}

export interface ScoreOptionsRef {
  objective: Objective;
  terms: readonly ScoreTermRef[];
  /** ntp: the answer tokens (vulnerable = yes). */
  answers?: { yes: number; no: number };
}

/** x0 = wte[ids] + wpe[pos] [T, D] of the batch, or of `ids` at the batch's positions. */
export function embeddingsRef(
  spec: ModelSpec,
  params: ParamMap,
  batch: PackedBatch,
  ids: ArrayLike<number> = batch.inputIds.flat(),
): Float64Array {
  const D = resolveConfig(spec.config).n_embd;
  const pos = batch.positionIds.flat();
  const wte = params.get('transformer.wte.weight')!;
  const wpe = params.get('transformer.wpe.weight')!;
  const x = new Float64Array(pos.length * D);
  for (let t = 0; t < pos.length; t++) {
    for (let i = 0; i < D; i++) x[t * D + i] = wte[ids[t] * D + i] + wpe[pos[t] * D + i];
  }
  return x;
}

/** The model rewritten so that its embedding output is `x0` (see the file comment). */
function atEmbeddings(
  spec: ModelSpec,
  params: ParamMap,
  batch: PackedBatch,
  x0: ArrayLike<number>,
): { spec: ModelSpec; params: ParamMap; batch: PackedBatch; V: number } {
  const c = resolveConfig(spec.config);
  const V = c.vocab_size;
  const D = c.n_embd;
  const T = x0.length / D;
  const wte = new Float64Array((V + T) * D);
  wte.set(params.get('transformer.wte.weight')!);
  wte.set(x0, V * D);
  const rewritten: ParamMap = new Map(params);
  rewritten.set('transformer.wte.weight', wte);
  rewritten.set('transformer.wpe.weight', new Float64Array(c.n_positions * D));
  const L = batch.inputIds[0].length;
  return {
    spec: { ...spec, config: { ...spec.config, vocab_size: V + T } },
    params: rewritten,
    batch: { ...batch, inputIds: batch.inputIds.map((row, b) => row.map((_, j) => V + b * L + j)) },
    V,
  };
}

function margins(
  logits: Float64Array,
  options: ScoreOptionsRef,
  columns: number,
): { margins: Float64Array; dlogits: Float64Array } {
  const out = new Float64Array(options.terms.length);
  const dlogits = new Float64Array(logits.length);
  options.terms.forEach(({ at, weight }, i) => {
    let pos: number;
    let neg: number;
    if (options.objective === 'cls') {
      pos = 2 * at + 1;
      neg = 2 * at;
    } else {
      if (!options.answers) throw new InternalError('ntp score: answers are needed');
      pos = at * columns + options.answers.yes;
      neg = at * columns + options.answers.no;
    }
    out[i] = logits[pos] - logits[neg];
    dlogits[pos] += weight;
    dlogits[neg] -= weight;
  });
  return { margins: out, dlogits };
}

/** Each term's margin and the score Σ weight · margin at embedding output `x0`. */
export function scoreAtRef(
  spec: ModelSpec,
  params: ParamMap,
  batch: PackedBatch,
  x0: ArrayLike<number>,
  options: ScoreOptionsRef,
): { score: number; margins: Float64Array } {
  const m = atEmbeddings(spec, params, batch, x0);
  const fwd = forwardRef(m.spec, m.params, m.batch, options.objective);
  const { margins: out } = margins(fwd.logits, options, m.V + x0.length / resolveConfig(spec.config).n_embd);
  let score = 0;
  options.terms.forEach(({ weight }, i) => (score += weight * out[i]));
  return { score, margins: out };
}

/** Margins, score and d(score)/d(x0) [T, D] at embedding output `x0`. */
export function scoreInputGradientRef(
  spec: ModelSpec,
  params: ParamMap,
  batch: PackedBatch,
  x0: ArrayLike<number>,
  options: ScoreOptionsRef,
): { score: number; margins: Float64Array; grad: Float64Array } {
  const m = atEmbeddings(spec, params, batch, x0);
  const D = resolveConfig(spec.config).n_embd;
  const fwd = forwardRef(m.spec, m.params, m.batch, options.objective);
  const { margins: out, dlogits } = margins(fwd.logits, options, m.V + x0.length / D);
  let score = 0;
  options.terms.forEach(({ weight }, i) => (score += weight * out[i]));
  const grads = backwardRef(m.spec, m.params, fwd.cache, dlogits);
  const grad = grads.get('transformer.wte.weight')!.slice(m.V * D, m.V * D + x0.length);
  return { score, margins: out, grad };
}

/** Gradient × input per token: the L2 norm over the embedding dimension of grad ⊙ x0. */
export function gradTimesInputRef(grad: ArrayLike<number>, x0: ArrayLike<number>, D: number): Float64Array {
  const T = x0.length / D;
  const out = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    let s = 0;
    for (let i = 0; i < D; i++) s += (grad[t * D + i] * x0[t * D + i]) ** 2;
    out[t] = Math.sqrt(s);
  }
  return out;
}

/**
 * Integrated gradients per token along the straight path from `baseline` to `x0`, midpoint Riemann
 * sum: attr[t] = Σ_d (x0 − baseline)[t, d] · (1/m) Σ_k grad(baseline + α_k (x0 − baseline))[t, d],
 * α_k = (k + ½)/m. The attributions sum to score(x0) − score(baseline) up to an O(1/m²) error.
 */
export function integratedGradientsRef(
  spec: ModelSpec,
  params: ParamMap,
  batch: PackedBatch,
  x0: ArrayLike<number>,
  baseline: ArrayLike<number>,
  options: ScoreOptionsRef,
  steps: number,
): Float64Array {
  const D = resolveConfig(spec.config).n_embd;
  const n = x0.length;
  const mean = new Float64Array(n);
  const x = new Float64Array(n);
  for (let k = 0; k < steps; k++) {
    const alpha = (k + 0.5) / steps;
    for (let i = 0; i < n; i++) x[i] = baseline[i] + alpha * (x0[i] - baseline[i]);
    const { grad } = scoreInputGradientRef(spec, params, batch, x, options);
    for (let i = 0; i < n; i++) mean[i] += grad[i] / steps;
  }
  const out = new Float64Array(n / D);
  for (let i = 0; i < n; i++) out[Math.floor(i / D)] += (x0[i] - baseline[i]) * mean[i];
  return out;
}
