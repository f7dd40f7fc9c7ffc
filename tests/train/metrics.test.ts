import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  atThreshold,
  averagePrecision,
  bestF1Threshold,
  bootstrapInterval,
  groupRocAuc,
  precisionRecallCurve,
  rocAuc,
  rocCurve,
  trapezoid,
} from '../../src/train/metrics.ts';

interface Fixture {
  name: string;
  labels: number[];
  scores: number[];
  cwe?: string[];
  validation: { labels: number[]; scores: number[] };
  expected: {
    roc_auc: number | null;
    average_precision: number;
    pr_auc_trapezoid: number;
    roc_curve: { fpr: number[]; tpr: number[]; thresholds: number[] };
    roc_curve_dropped: { fpr: number[]; tpr: number[]; thresholds: number[] };
    precision_recall_curve: { precision: number[]; recall: number[]; thresholds: number[] };
    validation_f1_max: { threshold: number; f1_on_validation: number };
    self_f1_max: { threshold: number; f1: number };
    at_threshold: Record<
      string,
      { threshold: number; precision: number; recall: number; f1: number; confusion_matrix: number[][] }
    >;
    per_cwe?: Record<string, { n: number; positives: number; roc_auc: number | null }>;
  };
}

const dir = new URL('../fixtures/metrics/', import.meta.url);
const fixtures: Fixture[] = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(new URL(f, dir), 'utf8')) as Fixture);

// Same float64 arithmetic as scikit-learn up to summation order.
const close = (actual: number, expected: number) => expect(actual).toBeCloseTo(expected, 12);
const allClose = (actual: number[], expected: number[]) => {
  expect(actual.length).toBe(expected.length);
  actual.forEach((value, i) => close(value, expected[i]));
};

describe('metrics against scikit-learn fixtures', () => {
  it('has fixtures to compare with', () => expect(fixtures.length).toBeGreaterThanOrEqual(5));

  for (const fx of fixtures) {
    describe(fx.name, () => {
      const { scores, labels, expected } = fx;
      it('ROC AUC', () => {
        const auc = rocAuc(scores, labels);
        if (expected.roc_auc === null) expect(auc).toBeNaN();
        else close(auc, expected.roc_auc);
      });
      it('ROC curve, full and with collinear points dropped', () => {
        for (const [drop, want] of [
          [false, expected.roc_curve],
          [true, expected.roc_curve_dropped],
        ] as const) {
          const curve = rocCurve(scores, labels, drop);
          allClose(curve.x, want.fpr);
          allClose(curve.y, want.tpr);
          allClose(curve.thresholds, want.thresholds);
        }
      });
      it('precision-recall curve, average precision and trapezoidal PR AUC', () => {
        const curve = precisionRecallCurve(scores, labels);
        allClose(curve.y, expected.precision_recall_curve.precision);
        allClose(curve.x, expected.precision_recall_curve.recall);
        allClose(curve.thresholds, expected.precision_recall_curve.thresholds);
        close(averagePrecision(scores, labels), expected.average_precision);
        close(trapezoid(curve.x, curve.y), expected.pr_auc_trapezoid);
      });
      it('F1-maximising thresholds on validation and on the scored set', () => {
        const validation = bestF1Threshold(fx.validation.scores, fx.validation.labels);
        close(validation.threshold, expected.validation_f1_max.threshold);
        close(validation.f1, expected.validation_f1_max.f1_on_validation);
        const self = bestF1Threshold(scores, labels);
        close(self.f1, expected.self_f1_max.f1);
      });
      it('precision, recall, F1 and confusion matrix at fixed thresholds', () => {
        for (const want of Object.values(expected.at_threshold)) {
          const got = atThreshold(scores, labels, want.threshold);
          close(got.precision, want.precision);
          close(got.recall, want.recall);
          close(got.f1, want.f1);
          expect(got.confusion).toEqual(want.confusion_matrix);
        }
      });
      if (expected.per_cwe && fx.cwe) {
        it('ROC AUC per CWE', () => {
          const got = groupRocAuc(scores, labels, fx.cwe!);
          for (const [cwe, want] of Object.entries(expected.per_cwe!)) {
            expect(got[cwe].n).toBe(want.n);
            expect(got[cwe].positives).toBe(want.positives);
            if (want.roc_auc === null) expect(got[cwe].rocAuc).toBeNull();
            else close(got[cwe].rocAuc!, want.roc_auc);
          }
        });
      }
    });
  }
});

describe('bootstrap interval', () => {
  it('brackets the point estimate and is reproducible from its seed', () => {
    const fx = fixtures.find((f) => f.name === 'random_n200') ?? fixtures[0];
    const interval = bootstrapInterval(fx.scores, fx.labels, rocAuc, { samples: 300, seed: 7 });
    const auc = rocAuc(fx.scores, fx.labels);
    expect(interval.low).toBeLessThanOrEqual(auc);
    expect(interval.high).toBeGreaterThanOrEqual(auc);
    expect(interval.high - interval.low).toBeGreaterThan(0);
    expect(bootstrapInterval(fx.scores, fx.labels, rocAuc, { samples: 300, seed: 7 })).toEqual(interval);
  });
  it('is undefined when every resample has one class', () => {
    const interval = bootstrapInterval([0.1, 0.2], [1, 1], rocAuc, { samples: 20 });
    expect(interval.low).toBeNaN();
  });
});
