/** Latency samples of a load program (h3load, wsload), kept in a growing array, and their percentiles. */
export class LatencyStats {
  #lat = new Float64Array(1 << 16);
  #n = 0;

  /** One completed request's (or echoed message's) latency, in ms. */
  latency(ms: number): void {
    if (this.#n === this.#lat.length) {
      const bigger = new Float64Array(this.#lat.length * 2);
      bigger.set(this.#lat);
      this.#lat = bigger;
    }
    this.#lat[this.#n++] = ms;
  }

  /** Nearest-rank percentile of the samples, in µs (NaN without any). */
  percentileUs(p: number): number {
    if (this.#n === 0) return NaN;
    const sorted = this.#lat.slice(0, this.#n).sort();
    const i = Math.min(this.#n - 1, Math.max(0, Math.ceil((p / 100) * this.#n) - 1));
    return Math.round(sorted[i] * 1000);
  }
}
