import type { RegressionBaseline } from '../model/baseline.js';
import { withinFloat32 } from './float32.js';
import { RollingMeans } from './rolling.js';

export const regressionOutlierReasons = ['above_max', 'below_min', 'non_finite'] as const;

/** A regression's predictions in plain typed arrays, read at scrape time: histogram, rolling mean, outliers. */
export class RegressionMonitor {
  readonly task = 'regression';
  readonly outlierReasons = regressionOutlierReasons;
  readonly window: RollingMeans;
  /** Cumulative counts by outlierReasons index. */
  readonly outliers = new Float64Array(regressionOutlierReasons.length);
  /** Prediction histogram: counts per bucket (last is +Inf, not cumulative), sum and count. */
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly baseline: RegressionBaseline,
    window: number,
    readonly bucketBounds: readonly number[],
    private readonly min: number,
    private readonly max: number,
  ) {
    this.window = new RollingMeans(1, window);
    this.buckets = new Float64Array(bucketBounds.length + 1);
  }

  /** Records `rows` predictions; returns how many were outliers. */
  record(predictions: ArrayLike<number>, rows: number): number {
    let outliers = 0;
    for (let r = 0; r < rows; r++) {
      const p = predictions[r]!;
      // One rule for every source of predictions (the model, an upstream, /observe): a value no
      // float32 holds is non_finite and stays out of the histogram, the window and every sum.
      if (!withinFloat32(p)) {
        this.outliers[2]!++;
        outliers++;
        continue;
      }
      this.window.push(predictions, r);
      const bounds = this.bucketBounds;
      let b = 0;
      while (b < bounds.length && p > bounds[b]!) b++;
      this.buckets[b]!++;
      this.sum += p;
      this.count++;
      if (p > this.max) {
        this.outliers[0]!++;
        outliers++;
      } else if (p < this.min) {
        this.outliers[1]!++;
        outliers++;
      }
    }
    return outliers;
  }
}
