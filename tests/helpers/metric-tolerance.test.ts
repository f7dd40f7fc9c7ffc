import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { atThreshold, averagePrecision, bestF1Threshold, rocAuc } from '../../src/train/metrics.ts';
import {
  ambiguousPairs,
  averagePrecisionTolerance,
  closeScorePairs,
  expectAveragePrecisionClose,
  expectRocAucClose,
  nearThreshold,
  rocAucTolerance,
} from './metric-tolerance.ts';

/**
 * Scores with many near-ties: a coarse grid (so whole groups tie) plus offsets of the order of the
 * tolerance (so pairs sit just inside or just outside 2·tol), and perturbations in [−tol, tol] that
 * often take the extremes. Both classes present.
 */
const scoredSet = fc
  .record({
    tol: fc.constantFrom(1e-7, 1e-5, 1e-3, 0.05),
    points: fc.array(
      fc.record({
        grid: fc.integer({ min: 0, max: 8 }),
        offset: fc.double({ min: -3, max: 3, noNaN: true }),
        label: fc.constantFrom(0, 1),
        push: fc.oneof(fc.constantFrom(-1, 1, 0), fc.double({ min: -1, max: 1, noNaN: true })),
      }),
      { minLength: 2, maxLength: 40 },
    ),
  })
  .filter(({ points }) => points.some((p) => p.label === 1) && points.some((p) => p.label === 0))
  .map(({ tol, points }) => {
    const scores = points.map((p) => p.grid / 8 + p.offset * tol);
    return {
      tol,
      scores,
      labels: points.map((p) => p.label),
      perturbed: scores.map((s, i) => s + points[i].push * tol),
    };
  });

describe('metric tolerances derived from a score tolerance', () => {
  it('a perturbation of every score by at most tol never moves ROC AUC by more than the bound', () => {
    fc.assert(
      fc.property(scoredSet, ({ tol, scores, labels, perturbed }) => {
        const moved = Math.abs(rocAuc(perturbed, labels) - rocAuc(scores, labels));
        const bound = rocAucTolerance(scores, labels, tol);
        expect(moved).toBeLessThanOrEqual(bound + 1e-12);
        // Symmetric: the other engine's scores give a valid bound as well.
        expect(moved).toBeLessThanOrEqual(rocAucTolerance(perturbed, labels, tol) + 1e-12);
      }),
      { numRuns: 2000 },
    );
  });

  it('nor average precision (PR AUC) by more than its bound', () => {
    fc.assert(
      fc.property(scoredSet, ({ tol, scores, labels, perturbed }) => {
        const moved = Math.abs(averagePrecision(perturbed, labels) - averagePrecision(scores, labels));
        expect(moved).toBeLessThanOrEqual(averagePrecisionTolerance(scores, labels, tol) + 1e-12);
      }),
      { numRuns: 2000 },
    );
  });

  it('metrics at a threshold stay put when no score lies within tol of it', () => {
    fc.assert(
      fc.property(scoredSet, fc.integer({ min: 0, max: 8 }), ({ tol, scores, labels, perturbed }, grid) => {
        const threshold = grid / 8 + tol / 3;
        const [a, b] = [atThreshold(scores, labels, threshold), atThreshold(perturbed, labels, threshold)];
        if (nearThreshold(scores, threshold, tol).length === 0) expect(b.confusion).toEqual(a.confusion);
      }),
      { numRuns: 1000 },
    );
  });

  it('the F1-maximising threshold is the same example’s score when no two scores are within 2·tol', () => {
    fc.assert(
      fc.property(scoredSet, ({ tol, scores, labels, perturbed }) => {
        const a = bestF1Threshold(scores, labels);
        const b = bestF1Threshold(perturbed, labels);
        if (closeScorePairs(scores, tol) === 0) {
          expect(perturbed[scores.indexOf(a.threshold)]).toBe(b.threshold);
          expect(b.f1).toBe(a.f1);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('the CI failure: engines 1e-7 apart flip one near-tied pair, and the bound allows exactly that', () => {
    // 2 positives, 2 negatives; positive 0.6 and negative 0.6 + 5e-8 swap when each moves by 1e-7.
    const labels = [1, 1, 0, 0];
    const torch = [0.9, 0.6, 0.6 + 5e-8, 0.1];
    const lab = [0.9, 0.6 + 8e-8, 0.6 - 2e-8, 0.1];
    expect(Math.abs(rocAuc(lab, labels) - rocAuc(torch, labels))).toBe(0.25);
    expect(ambiguousPairs(torch, labels, 1e-7)).toEqual({ ambiguous: 1, pairs: 4 });
    expect(rocAucTolerance(torch, labels, 1e-7)).toBe(0.25);
    expect(
      expectRocAucClose(rocAuc(lab, labels), rocAuc(torch, labels), {
        scores: torch,
        labels,
        scoreTol: 1e-7,
      }),
    ).toBe(0.25);
    // A tolerance too small to cover the observed difference leaves no room: the assertion fails and says why.
    expect(() =>
      expectRocAucClose(rocAuc(lab, labels), rocAuc(torch, labels), {
        scores: torch,
        labels,
        scoreTol: 1e-8,
      }),
    ).toThrow(
      /tolerance 0\.000e\+0 derived from the score tolerance 1\.00e-8 \(0 of 4 \(positive, negative\) pairs/,
    );
    expect(
      expectAveragePrecisionClose(averagePrecision(lab, labels), averagePrecision(torch, labels), {
        scores: torch,
        labels,
        scoreTol: 1e-7,
      }),
    ).toBeGreaterThanOrEqual(
      Math.abs(averagePrecision(lab, labels) - averagePrecision(torch, labels)) - 1e-12,
    );
  });

  it('well-separated scores leave no room at all', () => {
    const scores = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9];
    const labels = [0, 1, 0, 1, 0, 1];
    expect(rocAucTolerance(scores, labels, 1e-3)).toBe(0);
    expect(averagePrecisionTolerance(scores, labels, 1e-3)).toBe(0);
    expect(closeScorePairs(scores, 1e-3)).toBe(0);
    expect(nearThreshold(scores, 0.5, 1e-3)).toEqual([]);
    expect(nearThreshold(scores, 0.7, 1e-3)).toEqual([3]);
    expect(rocAucTolerance([0.1, 0.2], [1, 1], 1)).toBe(0); // one class: AUC undefined on both sides
  });
});
