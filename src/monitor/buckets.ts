/**
 * A histogram kept in a typed array and exposed at scrape time: an observe() is a short scan and
 * three adds, where a prom-client Histogram call costs far more on a per-row path.
 */
export class BucketCounts {
  /** Observations per bucket, not cumulative; the last one is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const { bounds } = this;
    let b = 0;
    while (b < bounds.length && v > bounds[b]!) b++;
    this.counts[b]!++;
    this.sum += v;
    this.count++;
  }
}
