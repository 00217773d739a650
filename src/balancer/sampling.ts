/**
 * Weighted sampling by inverse CDF: prefix sums of the weights and a binary search, O(log N)
 * per draw and no per-draw allocation. Shared by weighted_random, p2c and ewma.
 */

export class WeightedSampler {
  /** cum[i] = weights[0] + … + weights[i]. */
  readonly cum: Float64Array;
  readonly total: number;

  constructor(weights: ArrayLike<number>) {
    this.cum = new Float64Array(weights.length);
    let sum = 0;
    for (let i = 0; i < weights.length; i++) this.cum[i] = sum += weights[i];
    this.total = sum;
  }

  /** Index whose weight interval holds `x` ∈ [0, total): the first i with cum[i] > x. */
  locate(x: number): number {
    const cum = this.cum;
    let lo = 0;
    let hi = cum.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cum[mid] > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** One weighted draw; `u` is uniform in [0, 1). */
  sample(u: number): number {
    return this.locate(u * this.total);
  }

  /**
   * One weighted draw among all but `skip`, exactly, with one uniform: draw over the total
   * minus skip's weight and step over skip's interval.
   */
  sampleExcept(u: number, skip: number): number {
    const cum = this.cum;
    const w = skip === 0 ? cum[0] : cum[skip] - cum[skip - 1];
    let x = u * (this.total - w);
    if (x >= cum[skip] - w) x += w;
    return this.locate(x);
  }
}
