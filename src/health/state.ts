/**
 * The health state of one backend: active probe results (rise/fall) and passive outlier
 * detection (consecutive 5xx or connect failures eject for base × times-ejected, capped), as
 * in Envoy's outlier detection and HAProxy's rise/fall. Pure: no timers, no I/O; the caller
 * passes the time. A backend is usable when its active state is up and it is not ejected.
 */

export interface ActivePolicy {
  rise: number;
  fall: number;
}

export interface OutlierPolicy {
  consecutive5xx: number;
  consecutiveFailures: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
}

export type Transition = { up: boolean; reason: string } | undefined;

export class BackendHealth {
  /** Active verdict; true at boot so a restart sends traffic at once (probes can take it down). */
  activeUp = true;
  #okStreak = 0;
  #failStreak = 0;
  #consecutive5xx = 0;
  #consecutiveFailures = 0;
  ejectedUntil = 0;
  timesEjected = 0;
  lastCheck: { at: number; ok: boolean; detail: string } | undefined;
  lastReason = "initial";
  /** What isUsable() said last time a transition was computed (to report edges once). */
  #usable = true;

  constructor(public active: ActivePolicy | undefined, public outlier: OutlierPolicy | undefined) {}

  isUsable(now: number): boolean {
    return this.activeUp && now >= this.ejectedUntil;
  }

  /** isUsable() at the present time; no clock reading unless an ejection was ever set. */
  isUsableNow(): boolean {
    return this.activeUp && (this.ejectedUntil === 0 || Date.now() >= this.ejectedUntil);
  }

  /** An active probe finished. */
  probe(ok: boolean, detail: string, now: number): Transition {
    this.lastCheck = { at: now, ok, detail };
    if (!this.active) return undefined;
    if (ok) {
      this.#okStreak++;
      this.#failStreak = 0;
      if (!this.activeUp && this.#okStreak >= this.active.rise) {
        this.activeUp = true;
        this.lastReason = `passed ${this.#okStreak} active check(s)`;
      }
    } else {
      this.#failStreak++;
      this.#okStreak = 0;
      if (this.activeUp && this.#failStreak >= this.active.fall) {
        this.activeUp = false;
        this.lastReason = `failed ${this.#failStreak} active check(s): ${detail}`;
      }
    }
    return this.edge(now);
  }

  /**
   * A live request finished: status (0 when no response: connect failure or timeout).
   * `mayEject` is false when the pool's max_ejection_percent is reached.
   */
  passive(status: number, now: number, mayEject: boolean): Transition {
    const o = this.outlier;
    if (!o) return undefined;
    if (status === 0) {
      this.#consecutiveFailures++;
      this.#consecutive5xx = 0;
    } else if (status >= 500) {
      this.#consecutive5xx++;
      this.#consecutiveFailures = 0;
    } else {
      this.#consecutive5xx = 0;
      this.#consecutiveFailures = 0;
      return this.edge(now);
    }
    const hit5xx = this.#consecutive5xx >= o.consecutive5xx;
    const hitFail = this.#consecutiveFailures >= o.consecutiveFailures;
    if ((hit5xx || hitFail) && now >= this.ejectedUntil && mayEject) {
      this.timesEjected++;
      const ms = Math.min(o.baseEjectionMs * this.timesEjected, o.maxEjectionMs);
      this.ejectedUntil = now + ms;
      this.lastReason = hit5xx
        ? `ejected for ${ms}ms after ${this.#consecutive5xx} consecutive 5xx`
        : `ejected for ${ms}ms after ${this.#consecutiveFailures} consecutive connect failures/timeouts`;
      this.#consecutive5xx = 0;
      this.#consecutiveFailures = 0;
      // After an ejection a backend with active checks must pass `rise` of them again.
      if (this.active) {
        this.activeUp = false;
        this.#okStreak = 0;
      }
    }
    return this.edge(now);
  }

  /** Reports a change of usability since the last call (also used when ejections expire). */
  edge(now: number): Transition {
    const usable = this.isUsable(now);
    if (usable === this.#usable) return undefined;
    this.#usable = usable;
    if (usable && this.lastReason.startsWith("ejected")) this.lastReason = "ejection ended";
    return { up: usable, reason: this.lastReason };
  }

  get ejected(): boolean {
    return this.ejectedUntil > 0 && this.timesEjected > 0;
  }
}
