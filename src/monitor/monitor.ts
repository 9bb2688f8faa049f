import type { Baseline } from '../model/baseline.js';
import { withinFloat32 } from './float32.js';
import { RollingMeans } from './rolling.js';

export const outlierReasons = ['above_max', 'below_min', 'non_finite'] as const;
export type OutlierReason = (typeof outlierReasons)[number];
export const rangeSides = ['below_min', 'above_max'] as const;

/**
 * The per-row monitoring state, in plain typed arrays: a prom-client call costs ~0.3 us, so per
 * row and feature we only touch arrays here, and the metrics module reads them at scrape time.
 */
export class Monitor {
  readonly width: number;
  readonly featureWindow: RollingMeans;
  readonly predictionWindow: RollingMeans;
  /** Cumulative counts, [feature * 2 + side] with side 0 = below_min, 1 = above_max. */
  readonly outOfRange: Float64Array;
  /** Cumulative counts by outlierReasons index. */
  readonly outliers = new Float64Array(outlierReasons.length);
  /** First bin of each feature in the flat bin arrays; binStart[width] is the total bin count. */
  readonly binStart: Int32Array;
  /** Cumulative rows per (feature, bin): model_feature_bin_total. */
  readonly binTotals: Float64Array;
  /** Prediction histogram: counts per bucket (last is +Inf, not cumulative), sum and count. */
  readonly predictionBuckets: Float64Array;
  predictionSum = 0;
  predictionCount = 0;

  private readonly mins: Float64Array;
  private readonly maxs: Float64Array;
  /** Every feature's inner bin edges, one after the other: feature f's are [edgeStart[f], edgeStart[f + 1]). */
  private readonly edges: Float64Array;
  private readonly edgeStart: Int32Array;
  /** The flat bin of each value in the feature window, in the window's ring order. */
  private readonly binRing: Uint16Array;
  /** Rows per (feature, bin) inside the rolling window, for the PSI: counted from binRing when read after a record. */
  private readonly binWindow: Float64Array;
  private binWindowStale = false;

  constructor(
    readonly baseline: Baseline,
    window: number,
    readonly bucketBounds: readonly number[],
    private readonly predictionMin: number,
    private readonly predictionMax: number,
  ) {
    const features = baseline.features;
    this.width = features.length;
    this.featureWindow = new RollingMeans(this.width, window);
    this.predictionWindow = new RollingMeans(1, window);
    this.outOfRange = new Float64Array(this.width * 2);
    this.mins = Float64Array.from(features, (f) => f.min);
    this.maxs = Float64Array.from(features, (f) => f.max);
    this.edges = Float64Array.from(features.flatMap((f) => f.bin_edges));
    this.edgeStart = new Int32Array(this.width + 1);
    this.binStart = new Int32Array(this.width + 1);
    features.forEach((f, i) => {
      this.edgeStart[i + 1] = this.edgeStart[i]! + f.bin_edges.length;
      this.binStart[i + 1] = this.binStart[i]! + f.bin_edges.length + 1;
    });
    this.binTotals = new Float64Array(this.binStart[this.width]!);
    this.binWindow = new Float64Array(this.binStart[this.width]!);
    this.binRing = new Uint16Array(window * this.width);
    this.predictionBuckets = new Float64Array(bucketBounds.length + 1);
  }

  /**
   * Records `rows` accepted rows (row-major `features`) and their predictions.
   * Returns how many predictions were outliers.
   */
  record(features: Float64Array, predictions: ArrayLike<number>, rows: number): number {
    const { width, mins, maxs, outOfRange, edges, edgeStart, binTotals, binRing } = this;
    let outlierCount = 0;
    for (let r = 0; r < rows; r++) {
      const offset = r * width;
      const ringBase = this.featureWindow.slot * width;
      for (let f = 0; f < width; f++) {
        const v = features[offset + f]!;
        if (v < mins[f]!) outOfRange[f * 2]!++;
        else if (v > maxs[f]!) outOfRange[f * 2 + 1]!++;
        // The bin is the number of the feature's edges <= v (DESIGN.md); feature f has one bin more
        // than edges, so its bins start f places after its edges. Edges are few: a scan beats a search.
        let e = edgeStart[f]!;
        const end = edgeStart[f + 1]!;
        while (e < end && v >= edges[e]!) e++;
        const bin = e + f;
        binTotals[bin]!++;
        binRing[ringBase + f] = bin;
      }
      this.featureWindow.push(features, offset);
      outlierCount += this.recordPrediction(predictions, r);
    }
    this.binWindowStale ||= rows > 0;
    return outlierCount;
  }

  private recordPrediction(predictions: ArrayLike<number>, r: number): number {
    const p = predictions[r]!;
    // One rule for every source of predictions (the model, an upstream, /observe): a value no
    // float32 holds is non_finite and stays out of the histogram, the window and every sum.
    if (!withinFloat32(p)) {
      this.outliers[2]!++;
      return 1;
    }
    this.predictionWindow.push(predictions, r);
    const bounds = this.bucketBounds;
    let b = 0;
    while (b < bounds.length && p > bounds[b]!) b++;
    this.predictionBuckets[b]!++;
    this.predictionSum += p;
    this.predictionCount++;
    if (p > this.predictionMax) {
      this.outliers[0]!++;
      return 1;
    }
    if (p < this.predictionMin) {
      this.outliers[1]!++;
      return 1;
    }
    return 0;
  }

  /** PSI of the window's bin shares against the baseline's, smoothed (see psi()). */
  windowPsi(feature: number): number {
    const n = this.featureWindow.rows;
    if (n === 0) return Number.NaN;
    if (this.binWindowStale) {
      const { binWindow, binRing } = this;
      binWindow.fill(0);
      for (let i = 0; i < n * this.width; i++) binWindow[binRing[i]!]!++;
      this.binWindowStale = false;
    }
    const start = this.binStart[feature]!;
    const counts = this.binWindow.subarray(start, this.binStart[feature + 1]);
    return psi(counts, n, this.baseline.features[feature]!.bin_ratios);
  }
}

/**
 * Population stability index, sum over bins of (a - e) * ln(a / e). An empty window bin would
 * make ln(0), so window shares get half a row of additive smoothing per bin:
 * a_i = (c_i + 0.5) / (n + 0.5 k). The fleet-wide recording rule uses the same formula.
 */
export const PSI_SMOOTHING = 0.5;
export function psi(counts: ArrayLike<number>, n: number, expected: readonly number[]): number {
  const k = expected.length;
  let total = 0;
  for (let i = 0; i < k; i++) {
    const a = (counts[i]! + PSI_SMOOTHING) / (n + PSI_SMOOTHING * k);
    const e = expected[i]!;
    total += (a - e) * Math.log(a / e);
  }
  return total;
}
