/**
 * Float64 reference of input attributions: the score's gradient with respect to the embedding output
 * x0 [T, D] (wte[ids], + wpe[pos] where the family has learned positions, + the token embedding's LoRA
 * branch where it is adapted), gradient × input and integrated gradients, for tiny models of every
 * family (tests).
 *
 * It composes the float64 model of model.ts unchanged: a forward from an arbitrary x0 is the same
 * model with one extra token-table row per token holding that token's x0 (ids V..V+T−1), an all-zero
 * position table (learned positions; rotary positions still come from the batch's position ids) and
 * no embedding adapter (x0 already holds its output), so `forwardRef` computes the model at x0 and
 * `backwardRef` leaves d(score)/d(x0[t]) in the extra row V+t (each is used by exactly one token).
 * The extra rows add logit columns the next-token score never reads: a tied LM head gets them from
 * the table, an untied one gets as many zero rows.
 *
 * Score (the GPU's `TrainStep.scoreInputGradient`): Σ weight · margin over the terms, margin =
 * logit(vulnerable) − logit(not) — for cls the head's logit 1 − logit 0 of function `at`, for ntp the
 * " YES" − " NO" logit at token row `at`. The margin is the log-odds of the detector's probability
 * (p = sigmoid(margin)).
 */
import { InternalError } from '../errors.ts';
import { describeDecoder } from '../model/decoder.ts';
import { embeddingLoraRef } from './embedding-lora.ts';
import {
  backwardRef,
  forwardRef,
  type ModelSpec,
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

const table = (params: ParamMap, name: string): Float64Array => {
  const t = params.get(name);
  if (!t) throw new InternalError(`attribution reference: no parameter ${name}`);
  return t;
};

/** The embedding output x0 [T, D] of the batch, or of `ids` at the batch's positions. */
export function embeddingsRef(
  spec: ModelSpec,
  params: ParamMap,
  batch: PackedBatch,
  ids: ArrayLike<number> = batch.inputIds.flat(),
): Float64Array {
  const d = describeDecoder(spec.config);
  const D = d.width;
  const pos = batch.positionIds.flat();
  const T = pos.length;
  const wte = table(params, d.tokenEmbedding);
  const wpe = d.positionEmbedding ? table(params, d.positionEmbedding.weight) : null;
  const x = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < D; i++) x[t * D + i] = wte[ids[t] * D + i] + (wpe ? wpe[pos[t] * D + i] : 0);
  }
  if (spec.lora?.targets.includes('wte')) {
    const { y } = embeddingLoraRef(
      {
        ids: Int32Array.from(ids),
        a: table(params, d.embeddingLora.a),
        b: table(params, d.embeddingLora.b),
        T,
        D,
        V: d.vocab,
        rank: spec.lora.r,
        alpha: spec.lora.alpha,
      },
      new Float64Array(T * D),
    );
    for (let i = 0; i < x.length; i++) x[i] += y[i];
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
  const d = describeDecoder(spec.config);
  const V = d.vocab;
  const D = d.width;
  const T = x0.length / D;
  const rewritten: ParamMap = new Map(params);
  const wte = new Float64Array((V + T) * D);
  wte.set(table(params, d.tokenEmbedding));
  wte.set(x0, V * D);
  rewritten.set(d.tokenEmbedding, wte);
  if (d.positionEmbedding) rewritten.set(d.positionEmbedding.weight, new Float64Array(d.maxPositions * D));
  if (d.lmHead !== d.tokenEmbedding && params.has(d.lmHead)) {
    const head = new Float64Array((V + T) * D);
    head.set(table(params, d.lmHead));
    rewritten.set(d.lmHead, head);
  }
  const lora = spec.lora && { ...spec.lora, targets: spec.lora.targets.filter((t) => t !== 'wte') };
  const L = batch.inputIds[0].length;
  return {
    spec: { ...spec, lora, config: { ...spec.config, vocab_size: V + T } },
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
  const { margins: out } = margins(fwd.logits, options, m.V + x0.length / describeDecoder(spec.config).width);
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
  const D = describeDecoder(spec.config).width;
  const fwd = forwardRef(m.spec, m.params, m.batch, options.objective);
  const { margins: out, dlogits } = margins(fwd.logits, options, m.V + x0.length / D);
  let score = 0;
  options.terms.forEach(({ weight }, i) => (score += weight * out[i]));
  const grads = backwardRef(m.spec, m.params, fwd.cache, dlogits);
  const grad = table(grads, describeDecoder(spec.config).tokenEmbedding).slice(m.V * D, m.V * D + x0.length);
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
  const D = describeDecoder(spec.config).width;
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
