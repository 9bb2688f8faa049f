import { PROBABILITY_SUM_TOLERANCE, type ClassificationBaseline } from '../model/baseline.js';
import type { ClassificationAnswer } from '../model/model.js';
import { BucketCounts } from './buckets.js';
import { psi } from './psi.js';

export const classificationOutlierReasons = ['invalid_probabilities', 'unknown_class'] as const;
const INVALID_PROBABILITIES = 0;
const UNKNOWN = 1;

/** The top class's probability: how sure the model was. Below 0.5 only with three classes or more. */
export const CONFIDENCE_BUCKETS = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1];
/** The positive class's probability of a binary classifier, over its whole range. */
export const PROBABILITY_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];

/**
 * The top probability of row `r` of `k` probabilities, or NaN when the row is no probability
 * distribution: a value non-finite or outside 0..1, or a sum further than the tolerance from 1.
 */
export function confidence(probabilities: ArrayLike<number>, r: number, k: number): number {
  let top = 0;
  let sum = 0;
  for (let c = r * k; c < (r + 1) * k; c++) {
    const p = probabilities[c]!;
    if (!(p >= 0 && p <= 1)) return Number.NaN;
    sum += p;
    if (p > top) top = p;
  }
  return Math.abs(sum - 1) <= PROBABILITY_SUM_TOLERANCE ? top : Number.NaN;
}

/**
 * A classifier's predictions in plain typed arrays, read at scrape time: rows per class, the
 * classes of the last `window` rows, and the confidence histograms. A row whose label is not a
 * baseline class is an unknown_class outlier and counted nowhere else (its class cannot be a
 * label value); a row with a known class but probabilities that are none is counted as its class
 * and as invalid_probabilities, and stays out of the confidence histograms.
 */
export class ClassificationMonitor {
  readonly task = 'classification';
  readonly outlierReasons = classificationOutlierReasons;
  readonly classes: readonly string[];
  /** Cumulative rows per class: model_prediction_class_total. */
  readonly classTotals: Float64Array;
  /** Cumulative counts by outlierReasons index. */
  readonly outliers = new Float64Array(classificationOutlierReasons.length);
  /** Top-class probability per row; present when the model gives probabilities. */
  readonly confidence: BucketCounts | undefined;
  /** The positive (second) class's probability; present for a binary model with probabilities. */
  readonly positive: BucketCounts | undefined;
  /** Rows per class among the last `capacity` rows with a known class. */
  private readonly windowCounts: Float64Array;
  private readonly ring: Int32Array;
  private next = 0;
  private filled = 0;

  constructor(
    readonly baseline: ClassificationBaseline,
    readonly capacity: number,
    hasProbabilities: boolean,
  ) {
    this.classes = baseline.classes;
    const k = this.classes.length;
    this.classTotals = new Float64Array(k);
    this.windowCounts = new Float64Array(k);
    this.ring = new Int32Array(capacity);
    this.confidence = hasProbabilities ? new BucketCounts(CONFIDENCE_BUCKETS) : undefined;
    this.positive = hasProbabilities && k === 2 ? new BucketCounts(PROBABILITY_BUCKETS) : undefined;
  }

  /** Records `rows` answers; returns how many were outliers. */
  record(answer: ClassificationAnswer, rows: number): number {
    const { classes, probabilities } = answer;
    const k = this.classes.length;
    let outliers = 0;
    for (let r = 0; r < rows; r++) {
      const c = classes[r]!;
      if (c < 0) {
        this.outliers[UNKNOWN]!++;
        outliers++;
        continue;
      }
      this.classTotals[c]!++;
      if (this.filled === this.capacity) this.windowCounts[this.ring[this.next]!]!--;
      else this.filled++;
      this.ring[this.next] = c;
      this.windowCounts[c]!++;
      if (++this.next === this.capacity) this.next = 0;
      if (probabilities === undefined || this.confidence === undefined) continue;
      const top = confidence(probabilities, r, k);
      if (Number.isNaN(top)) {
        this.outliers[INVALID_PROBABILITIES]!++;
        outliers++;
        continue;
      }
      this.confidence.observe(top);
      this.positive?.observe(probabilities[r * k + 1]!);
    }
    return outliers;
  }

  /** Share of class `c` in the window; NaN while it is empty. */
  share(c: number): number {
    return this.filled === 0 ? Number.NaN : this.windowCounts[c]! / this.filled;
  }

  /** PSI of the window's class shares against the baseline's predicted shares. */
  psi(): number {
    return this.filled === 0 ? Number.NaN : psi(this.windowCounts, this.filled, this.baseline.prediction.class_shares);
  }
}
