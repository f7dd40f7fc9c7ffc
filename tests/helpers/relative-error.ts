/** A logits comparison shared by Node and browser tests (no Node or vitest imports). */
/** Largest absolute difference relative to the reference's largest magnitude (NaN stays NaN). */
export function relativeError(actual: ArrayLike<number>, reference: ArrayLike<number>): number {
  if (actual.length !== reference.length) throw new Error(`length ${actual.length} != ${reference.length}`);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < reference.length; i++) {
    scale = Math.max(scale, Math.abs(reference[i]));
    const d = Math.abs(actual[i] - reference[i]);
    if (Number.isNaN(d)) return NaN;
    worst = Math.max(worst, d);
  }
  return worst / Math.max(scale, 1e-30);
}
