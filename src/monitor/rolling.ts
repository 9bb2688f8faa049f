/**
 * Means of the last `capacity` rows of `width` columns, O(1) per value. Running sums drift by
 * float rounding as values enter and leave, so each time the ring wraps the sums are recomputed
 * from the ring itself: amortised O(1), and the error never outlives one window.
 */
export class RollingMeans {
  private readonly ring: Float64Array;
  private readonly sums: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(
    readonly width: number,
    readonly capacity: number,
  ) {
    this.ring = new Float64Array(width * capacity);
    this.sums = new Float64Array(width);
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

  /** Adds the row at `values[offset .. offset + width)`. */
  push(values: ArrayLike<number>, offset: number): void {
    const { ring, sums, width } = this;
    const base = this.next * width;
    const full = this.filled === this.capacity;
    for (let f = 0; f < width; f++) {
      const v = values[offset + f]!;
      sums[f]! += full ? v - ring[base + f]! : v;
      ring[base + f] = v;
    }
    if (!full) this.filled++;
    if (++this.next === this.capacity) {
      this.next = 0;
      this.resum();
    }
  }

  mean(column: number): number {
    return this.filled === 0 ? Number.NaN : this.sums[column]! / this.filled;
  }

  private resum(): void {
    const { ring, sums, width } = this;
    sums.fill(0);
    for (let i = 0; i < this.filled * width; i += width) {
      for (let f = 0; f < width; f++) sums[f]! += ring[i + f]!;
    }
  }
}
