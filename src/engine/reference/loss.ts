/**
 * Float64 CPU reference of the training losses: focal loss of the classification head (per function,
 * from the last token's logits) and next-token cross-entropy over packed sequences, each with its
 * gradient with respect to the logits.
 */
import { BadInputError, ShapeError } from '../errors.ts';
import type { AttentionMode, FocalOptions } from '../../shared/batch.ts';

export type { AttentionMode, FocalOptions } from '../../shared/batch.ts';

export interface LossResult {
  loss: number;
  /** dLoss/dlogits, same layout as the logits. */
  dlogits: Float64Array;
}

/** log-softmax of one row, numerically stable. */
function logSoftmaxRow(logits: ArrayLike<number>, offset: number, n: number, out: Float64Array): void {
  let max = -Infinity;
  for (let j = 0; j < n; j++) max = Math.max(max, logits[offset + j]);
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(logits[offset + j] - max);
  const lse = max + Math.log(sum);
  for (let j = 0; j < n; j++) out[j] = logits[offset + j] - lse;
}

/**
 * Focal loss over F functions with C = 2 classes: mean over functions of
 * weight_i · FL_i, FL = −α_t (1 − p_t)^γ log p_t, p = softmax(logits_i), t = label_i.
 */
export function focalLossRef(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  weights: ArrayLike<number>,
  { gamma, alpha }: FocalOptions,
): LossResult & { perFunction: Float64Array } {
  const C = 2;
  const F = labels.length;
  if (logits.length !== F * C) throw new ShapeError(`focal loss: ${logits.length} logits for ${F} functions`);
  const dlogits = new Float64Array(F * C);
  const perFunction = new Float64Array(F);
  const lp = new Float64Array(C);
  let loss = 0;
  for (let i = 0; i < F; i++) {
    const t = labels[i];
    if (t !== 0 && t !== 1) throw new BadInputError(`focal loss: label ${t} of function ${i} is not 0 or 1`);
    logSoftmaxRow(logits, i * C, C, lp);
    const logPt = lp[t];
    const pt = Math.exp(logPt);
    const at = alpha === null ? 1 : t === 1 ? alpha : 1 - alpha;
    const oneMinus = -Math.expm1(logPt); // 1 − p_t without cancellation
    const mod = gamma === 0 ? 1 : Math.pow(oneMinus, gamma);
    const fl = -at * mod * logPt;
    perFunction[i] = fl;
    loss += weights[i] * fl;
    // dFL/dz_j = −α_t [ (1−p_t)^γ − γ (1−p_t)^(γ−1) p_t log p_t ] (δ_jt − p_j)
    // (1−p)^(γ−1)·log p written as (1−p)^γ·(log p / (1−p)); the ratio tends to −1 as p → 1.
    const ratio = oneMinus > 0 ? logPt / oneMinus : -1;
    const dmod = gamma === 0 ? 0 : gamma * mod * pt * ratio;
    const g = -at * (mod - dmod);
    const scale = weights[i] / F;
    for (let j = 0; j < C; j++) {
      const pj = Math.exp(lp[j]);
      dlogits[i * C + j] = scale * g * ((j === t ? 1 : 0) - pj);
    }
  }
  return { loss: F > 0 ? loss / F : 0, dlogits, perFunction };
}

/**
 * Next-token targets of a packed batch (flat over packs): target[t] = inputIds[t+1] when token t+1
 * continues token t — same segment (packed) or a non-padding token of the same pack (paper) — else −1.
 */
export function ntpTargets(
  inputIds: ArrayLike<number>,
  segmentIds: ArrayLike<number>,
  packLength: number,
  mode: AttentionMode,
): Int32Array {
  const T = inputIds.length;
  const targets = new Int32Array(T).fill(-1);
  for (let t = 0; t + 1 < T; t++) {
    if ((t + 1) % packLength === 0) continue; // next token is in the next pack
    const s = segmentIds[t];
    const n = segmentIds[t + 1];
    if (s === -1 || n === -1) continue;
    if (mode === 'packed' && s !== n) continue;
    targets[t] = inputIds[t + 1];
  }
  return targets;
}

/** Mean softmax cross-entropy over rows with target ≥ 0 (logits [T, V]); rows with −1 are ignored. */
export function crossEntropyRef(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  V: number,
): LossResult {
  const T = targets.length;
  if (logits.length !== T * V) throw new ShapeError(`cross-entropy: ${logits.length} logits for ${T}×${V}`);
  const dlogits = new Float64Array(T * V);
  let count = 0;
  for (let t = 0; t < T; t++) if (targets[t] >= 0) count++;
  if (count === 0) return { loss: 0, dlogits };
  const lp = new Float64Array(V);
  let loss = 0;
  for (let t = 0; t < T; t++) {
    const y = targets[t];
    if (y < 0) continue;
    if (y >= V)
      throw new BadInputError(`cross-entropy: target ${y} at row ${t} is outside the vocabulary (${V})`);
    logSoftmaxRow(logits, t * V, V, lp);
    loss -= lp[y];
    for (let j = 0; j < V; j++) dlogits[t * V + j] = (Math.exp(lp[j]) - (j === y ? 1 : 0)) / count;
  }
  return { loss: loss / count, dlogits };
}
