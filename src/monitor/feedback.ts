import type { Baseline, RegressionBaseline } from '../model/baseline.js';
import { BucketCounts } from './buckets.js';
import { withinFloat32 } from './float32.js';
import { DUPLICATE, UNKNOWN, type PredictionStore } from './prediction-store.js';

export const feedbackOutcomes = ['matched', 'unknown_id', 'duplicate'] as const;
export type FeedbackOutcome = (typeof feedbackOutcomes)[number];

/**
 * Absolute-error buckets as multiples of the model's held-out MAE, so 1x and the alert's 1.5x are
 * bucket edges whatever the target's scale; without a held-out MAE the training predictions'
 * spread stands in for it.
 */
export function absErrorBuckets(b: RegressionBaseline): number[] {
  const scale = b.abs_error_mean ?? b.prediction.stddev;
  return [0.1, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5].map((k) => Number((k * scale).toPrecision(4)));
}

/** Label delay from a second to a week: labels come from another system, minutes to days late. */
export const delayBuckets = [1, 10, 60, 300, 900, 1800, 3600, 7200, 21600, 86400, 259200, 604800];

/** Regression errors of matched labels: the absolute-error histogram and the sum of squares. */
export class RegressionErrors {
  readonly task = 'regression';
  readonly absError: BucketCounts;
  squaredErrorSum = 0;

  constructor(baseline: RegressionBaseline) {
    this.absError = new BucketCounts(absErrorBuckets(baseline));
  }

  observe(prediction: number, actual: number): void {
    // A non_finite prediction (already an outlier) has no error to add: one Infinity, or the
    // square of 1e200, would make the error sums useless for the life of the process.
    if (!withinFloat32(prediction)) return;
    const error = prediction - actual;
    this.absError.observe(Math.abs(error));
    this.squaredErrorSum += error * error;
  }
}

/** A classifier's matched labels as a confusion matrix, [actual * classes + predicted]: accuracy, precision and recall follow. */
export class ClassConfusion {
  readonly task = 'classification';
  readonly counts: Float64Array;

  constructor(readonly classes: number) {
    this.counts = new Float64Array(classes * classes);
  }

  /** `prediction` and `actual` are class indices; a prediction of no known class (UNKNOWN_CLASS) has no cell. */
  observe(prediction: number, actual: number): void {
    if (prediction >= 0) this.counts[actual * this.classes + prediction]!++;
  }
}

/**
 * Ground truth joined to remembered predictions: outcome counts, the delay histogram and the
 * task's errors, in typed arrays read at scrape time. Only a first match reaches the errors, so
 * a label sent twice, or for a forgotten prediction, never moves them.
 */
export class Feedback {
  /** Cumulative labels by feedbackOutcomes index. */
  readonly outcomes = new Float64Array(feedbackOutcomes.length);
  readonly delay = new BucketCounts(delayBuckets);
  readonly errors: RegressionErrors | ClassConfusion;

  constructor(
    readonly store: PredictionStore,
    baseline: Baseline,
  ) {
    this.errors = baseline.task === 'classification' ? new ClassConfusion(baseline.classes.length) : new RegressionErrors(baseline);
  }

  get enabled(): boolean {
    return this.store.capacity > 0;
  }

  /** `actual` is the true value, or for a classifier the true class's index. */
  label(rowId: string, actual: number): FeedbackOutcome {
    const slot = this.store.match(rowId);
    const outcome: FeedbackOutcome = slot === UNKNOWN ? 'unknown_id' : slot === DUPLICATE ? 'duplicate' : 'matched';
    this.outcomes[feedbackOutcomes.indexOf(outcome)]!++;
    if (outcome !== 'matched') return outcome;
    this.delay.observe((this.store.clock() - this.store.predictedAt(slot)) / 1000);
    this.errors.observe(this.store.prediction(slot), actual);
    return outcome;
  }
}
