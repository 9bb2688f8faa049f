/**
 * Means of the last `capacity` rows of `width` columns, a NaN (a missing value) left out of its
 * column's mean. A push only stores the row: rows come on
 * every request, means are read once a scrape, so the sums are recomputed from the ring when a
 * read follows a push (O(capacity * width), some microseconds a scrape). Summing the window
 * afresh also keeps the means exact: running sums would drift by rounding as values come and go.
 */
export class RollingMeans {
  private readonly ring: Float64Array;
  private readonly sums: Float64Array;
  /** Values that are not NaN per column in the window. */
  private readonly present: Float64Array;
  private next = 0;
  private filled = 0;
  private stale = false;

  constructor(
    readonly width: number,
    readonly capacity: number,
  ) {
    this.ring = new Float64Array(width * capacity);
    this.sums = new Float64Array(width);
    this.present = new Float64Array(width);
  }

  get rows(): number {
    return this.filled;
  }

  /** True once `capacity` rows are in: from then on each push evicts the oldest row. */
  get full(): boolean {
    return this.filled === this.capacity;
  }

  /** The slot the next push writes (and, when full, evicts): lets a caller keep a parallel ring. */
  get slot(): number {
    return this.next;
  }

  /** Adds the row at `values[offset .. offset + width)`, evicting the oldest when full. */
  push(values: ArrayLike<number>, offset: number): void {
    const { ring, width } = this;
    const base = this.next * width;
    for (let f = 0; f < width; f++) ring[base + f] = values[offset + f]!;
    if (this.filled < this.capacity) this.filled++;
    if (++this.next === this.capacity) this.next = 0;
    this.stale = true;
  }

  mean(column: number): number {
    if (this.filled === 0) return Number.NaN;
    if (this.stale) this.resum();
    return this.present[column] === 0 ? Number.NaN : this.sums[column]! / this.present[column]!;
  }

  private resum(): void {
    const { ring, sums, present, width } = this;
    this.stale = false;
    sums.fill(0);
    present.fill(0);
    for (let i = 0; i < this.filled * width; i += width) {
      for (let f = 0; f < width; f++) {
        const v = ring[i + f]!;
        if (v !== v) continue;
        sums[f]! += v;
        present[f]!++;
      }
    }
  }
}
