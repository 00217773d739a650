/**
 * One coarse timer for every connection deadline (header, body, idle, upstream response).
 * A connection sets `deadline` to an absolute time and keeps its `Deadline` registered; a
 * sweep every `tickMs` fires the expired ones. This costs one timer per process instead of a
 * setTimeout/clearTimeout pair per request, at the price of `tickMs` of imprecision, which
 * is fine for timeouts measured in seconds. The registrations are a MemberList, not a Set: a Set
 * churned by every connection makes scavenges keep dead connections alive (member_list.ts says how).
 */

import { MemberList, memberSlot } from "./member_list.ts";

export interface Deadline {
  /** Absolute time (performance.now() ms) after which onExpire runs; Infinity = none. */
  deadline: number;
  /** What to report when it fires (e.g. "header", "body", "idle"). */
  reason: string;
  onExpire(reason: string): void;
}

const SWEEPER = memberSlot("deadlines");

export class DeadlineSweeper {
  readonly #entries = new MemberList<Deadline>(SWEEPER);
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly tickMs = 250) {}

  add(d: Deadline): void {
    this.#entries.add(d);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.sweep(performance.now()), this.tickMs);
      Deno.unrefTimer(this.#timer!);
    }
  }

  delete(d: Deadline): void {
    this.#entries.delete(d);
    if (this.#entries.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  sweep(now: number): void {
    for (const d of this.#entries) {
      if (d.deadline <= now) {
        d.deadline = Infinity;
        try {
          d.onExpire(d.reason);
        } catch {
          // an expiry handler only closes sockets; it must not stop the sweep
        }
      }
    }
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#entries.clear();
  }
}

/** The process-wide sweeper (one per isolate). */
export const sweeper = new DeadlineSweeper();
