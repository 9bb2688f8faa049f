import { isCategorical, type Baseline } from '../model/baseline.js';
import { psi } from './psi.js';
import { RollingMeans } from './rolling.js';

export const rangeSides = ['below_min', 'above_max'] as const;

/** binRing's mark for a missing value, which falls in no bin. */
const MISSING = 0xffffffff;

/**
 * The per-row feature state, in plain typed arrays: a prom-client call costs ~0.3 us, so per
 * row and feature we only touch arrays here, and the metrics module reads them at scrape time.
 *
 * A numeric feature's "bins" are its baseline quantile bins; a categorical feature's are its
 * categories, then __other__ and __unseen__, and its value in a row is already that bin's code
 * (CategoryCodes). A missing value (NaN) is counted as such and falls in no bin, no range side
 * and no mean.
 */
export class FeatureMonitor {
  readonly width: number;
  readonly window: RollingMeans;
  /** Cumulative counts, [feature * 2 + side] with side 0 = below_min, 1 = above_max. */
  readonly outOfRange: Float64Array;
  /** First bin of each feature in the flat bin arrays; binStart[width] is the total bin count. */
  readonly binStart: Int32Array;
  /** Cumulative rows per (feature, bin): model_feature_bin_total, or model_feature_category_total. */
  readonly binTotals: Float64Array;
  /** Cumulative rows per feature where it was missing: model_feature_missing_total. */
  readonly missing: Float64Array;

  private readonly mins: Float64Array;
  private readonly maxs: Float64Array;
  /** 1 for a categorical feature: its value is its bin's code. */
  private readonly categorical: Uint8Array;
  /** Every numeric feature's inner bin edges, one after the other: feature f's are [edgeStart[f], edgeStart[f + 1]). */
  private readonly edges: Float64Array;
  private readonly edgeStart: Int32Array;
  /** binStart[f] - edgeStart[f]: a numeric value past edge index e falls in flat bin e + binOffset[f]. */
  private readonly binOffset: Int32Array;
  /** The flat bin of each value in the window (MISSING for none), in the window's ring order. */
  private readonly binRing: Uint32Array;
  /** Rows per (feature, bin) inside the rolling window, for the PSI: counted from binRing when read after a record. */
  private readonly binWindow: Float64Array;
  /** Rows per feature inside the window with a value: the PSI's n. */
  private readonly presentWindow: Float64Array;
  private binWindowStale = false;

  constructor(
    readonly baseline: Baseline,
    window: number,
  ) {
    const features = baseline.features;
    this.width = features.length;
    this.window = new RollingMeans(this.width, window);
    this.outOfRange = new Float64Array(this.width * 2);
    this.missing = new Float64Array(this.width);
    this.categorical = Uint8Array.from(features, (f) => (isCategorical(f) ? 1 : 0));
    // A category code is never outside these: categorical features count in no range side.
    this.mins = Float64Array.from(features, (f) => (isCategorical(f) ? -Infinity : f.min));
    this.maxs = Float64Array.from(features, (f) => (isCategorical(f) ? Infinity : f.max));
    this.edges = Float64Array.from(features.flatMap((f) => (isCategorical(f) ? [] : f.bin_edges)));
    this.edgeStart = new Int32Array(this.width + 1);
    this.binStart = new Int32Array(this.width + 1);
    this.binOffset = new Int32Array(this.width);
    features.forEach((f, i) => {
      const edges = isCategorical(f) ? 0 : f.bin_edges.length;
      const bins = isCategorical(f) ? f.category_ratios.length : edges + 1;
      this.edgeStart[i + 1] = this.edgeStart[i]! + edges;
      this.binStart[i + 1] = this.binStart[i]! + bins;
      this.binOffset[i] = this.binStart[i]! - this.edgeStart[i]!;
    });
    this.binTotals = new Float64Array(this.binStart[this.width]!);
    this.binWindow = new Float64Array(this.binStart[this.width]!);
    this.presentWindow = new Float64Array(this.width);
    this.binRing = new Uint32Array(window * this.width);
  }

  /** Records `rows` accepted rows (row-major `features`). */
  record(features: Float64Array, rows: number): void {
    const { width, mins, maxs, outOfRange, edges, edgeStart, binOffset, binStart, categorical, binTotals, binRing, missing } = this;
    for (let r = 0; r < rows; r++) {
      const offset = r * width;
      const ringBase = this.window.slot * width;
      for (let f = 0; f < width; f++) {
        const v = features[offset + f]!;
        if (v !== v) {
          missing[f]!++;
          binRing[ringBase + f] = MISSING;
          continue;
        }
        let bin: number;
        if (categorical[f] === 1) bin = binStart[f]! + v;
        else {
          if (v < mins[f]!) outOfRange[f * 2]!++;
          else if (v > maxs[f]!) outOfRange[f * 2 + 1]!++;
          // The bin is the number of the feature's edges <= v. Edges are few: a scan beats a search.
          let e = edgeStart[f]!;
          const end = edgeStart[f + 1]!;
          while (e < end && v >= edges[e]!) e++;
          bin = e + binOffset[f]!;
        }
        binTotals[bin]!++;
        binRing[ringBase + f] = bin;
      }
      this.window.push(features, offset);
    }
    this.binWindowStale ||= rows > 0;
  }

  /** PSI of the window's bin (or category) shares against the baseline's, smoothed (see psi()); NaN without a value in the window. */
  windowPsi(feature: number): number {
    const n = this.window.rows;
    if (n === 0) return Number.NaN;
    if (this.binWindowStale) {
      const { binWindow, binRing, presentWindow, width } = this;
      binWindow.fill(0);
      presentWindow.fill(0);
      for (let i = 0; i < n * width; i++) {
        const bin = binRing[i]!;
        if (bin === MISSING) continue;
        binWindow[bin]!++;
        presentWindow[i % width]!++;
      }
      this.binWindowStale = false;
    }
    const present = this.presentWindow[feature]!;
    if (present === 0) return Number.NaN;
    const start = this.binStart[feature]!;
    const counts = this.binWindow.subarray(start, this.binStart[feature + 1]);
    const f = this.baseline.features[feature]!;
    return psi(counts, present, isCategorical(f) ? f.category_ratios : f.bin_ratios);
  }
}
