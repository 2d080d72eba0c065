// A ring of fixed-width time buckets, each holding a few numeric fields: the sliding window
// behind the retry budget, the circuit breaker and the live stats. O(1) per update, no
// allocation after construction; time comes from the caller (a monotonic clock in ms).

export interface RollingWindowOptions {
  /** Buckets in the window; the window spans `buckets * bucketMs`. */
  buckets: number;
  bucketMs: number;
  /** Numbers kept per bucket. */
  fields: number;
}

export class RollingWindow {
  readonly buckets: number;
  readonly bucketMs: number;
  readonly fields: number;
  /** Every bucket's fields, bucket after bucket; read through `offset()`. */
  readonly data: Float64Array;
  /** Ring index of the newest bucket. */
  private head = 0;
  /** Bucket number (`floor(now / bucketMs)`) of the newest bucket; -1 before the first use. */
  private headNumber = -1;

  constructor(options: RollingWindowOptions) {
    if (!(options.buckets >= 1 && options.bucketMs > 0 && options.fields >= 1)) throw new RangeError("rolling window: buckets, bucketMs and fields must be positive");
    this.buckets = options.buckets;
    this.bucketMs = options.bucketMs;
    this.fields = options.fields;
    this.data = new Float64Array(options.buckets * options.fields);
  }

  /** Offset in `data` of the first field of the bucket that holds `now` (older buckets are cleared). */
  offset(now: number): number {
    const n = Math.floor(now / this.bucketMs);
    if (n !== this.headNumber) this.advance(n);
    return this.head * this.fields;
  }

  add(field: number, value: number, now: number): void {
    this.data[this.offset(now) + field]! += value;
  }

  /** Sum of one field over the newest `span` buckets (the current one included). */
  sum(field: number, now: number, span = this.buckets): number {
    this.offset(now);
    const n = Math.min(span, this.buckets);
    let total = 0;
    for (let age = 0, i = this.head; age < n; age++, i = i === 0 ? this.buckets - 1 : i - 1) total += this.data[i * this.fields + field]!;
    return total;
  }

  /**
   * Calls `visit` with the offset of each of the newest `span` buckets, newest first (`age` 0),
   * so a reader can take several fields at once.
   */
  forEach(now: number, span: number, visit: (offset: number, age: number) => void): void {
    this.offset(now);
    const n = Math.min(span, this.buckets);
    for (let age = 0, i = this.head; age < n; age++, i = i === 0 ? this.buckets - 1 : i - 1) visit(i * this.fields, age);
  }

  reset(): void {
    this.data.fill(0);
  }

  private advance(n: number): void {
    if (this.headNumber === -1) {
      this.headNumber = n;
      return;
    }
    // A clock that went backwards keeps writing into the newest bucket rather than losing data.
    if (n < this.headNumber) return;
    const steps = Math.min(n - this.headNumber, this.buckets);
    for (let s = 0; s < steps; s++) {
      this.head = this.head + 1 === this.buckets ? 0 : this.head + 1;
      const o = this.head * this.fields;
      this.data.fill(0, o, o + this.fields);
    }
    this.headNumber = n;
  }
}
