import type { Baseline } from '../model/baseline.js';
import { psi } from './psi.js';
import { RollingMeans } from './rolling.js';

export const rangeSides = ['below_min', 'above_max'] as const;

/**
 * The per-row feature state, in plain typed arrays: a prom-client call costs ~0.3 us, so per
 * row and feature we only touch arrays here, and the metrics module reads them at scrape time.
 */
export class FeatureMonitor {
  readonly width: number;
  readonly window: RollingMeans;
  /** Cumulative counts, [feature * 2 + side] with side 0 = below_min, 1 = above_max. */
  readonly outOfRange: Float64Array;
  /** First bin of each feature in the flat bin arrays; binStart[width] is the total bin count. */
  readonly binStart: Int32Array;
  /** Cumulative rows per (feature, bin): model_feature_bin_total. */
  readonly binTotals: Float64Array;

  private readonly mins: Float64Array;
  private readonly maxs: Float64Array;
  /** Every feature's inner bin edges, one after the other: feature f's are [edgeStart[f], edgeStart[f + 1]). */
  private readonly edges: Float64Array;
  private readonly edgeStart: Int32Array;
  /** The flat bin of each value in the window, in the window's ring order. */
  private readonly binRing: Uint16Array;
  /** Rows per (feature, bin) inside the rolling window, for the PSI: counted from binRing when read after a record. */
  private readonly binWindow: Float64Array;
  private binWindowStale = false;

  constructor(
    readonly baseline: Baseline,
    window: number,
  ) {
    const features = baseline.features;
    this.width = features.length;
    this.window = new RollingMeans(this.width, window);
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
  }

  /** Records `rows` accepted rows (row-major `features`). */
  record(features: Float64Array, rows: number): void {
    const { width, mins, maxs, outOfRange, edges, edgeStart, binTotals, binRing } = this;
    for (let r = 0; r < rows; r++) {
      const offset = r * width;
      const ringBase = this.window.slot * width;
      for (let f = 0; f < width; f++) {
        const v = features[offset + f]!;
        if (v < mins[f]!) outOfRange[f * 2]!++;
        else if (v > maxs[f]!) outOfRange[f * 2 + 1]!++;
        // The bin is the number of the feature's edges <= v; feature f has one bin more than
        // edges, so its bins start f places after its edges. Edges are few: a scan beats a search.
        let e = edgeStart[f]!;
        const end = edgeStart[f + 1]!;
        while (e < end && v >= edges[e]!) e++;
        const bin = e + f;
        binTotals[bin]!++;
        binRing[ringBase + f] = bin;
      }
      this.window.push(features, offset);
    }
    this.binWindowStale ||= rows > 0;
  }

  /** PSI of the window's bin shares against the baseline's, smoothed (see psi()). */
  windowPsi(feature: number): number {
    const n = this.window.rows;
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
