/**
 * A send timeout that costs nothing per write: a connection whose writes stop making progress
 * (a client that stopped reading, a zero TCP window) is cut once it has been stuck for
 * `timeoutMs`, as nginx's `send_timeout` and HAProxy's `timeout client` cut a client that takes
 * nothing for that long. Without it a client that asks for a large response and never reads
 * holds its connection, its request's in-flight slot and an upstream connection forever.
 *
 * The writer only counts its completed write operations (`progress`) and says whether one is in
 * flight (`busy`). The watch looks every `timeoutMs / 2` (a deadline on the shared sweeper, so
 * no timer per connection and none per write): when a write was in flight at two checks in a
 * row and nothing completed in between, the connection is stuck for at least the half
 * interval; two such intervals in a row, at least `timeoutMs`, and `onStall` runs. A stuck
 * connection is cut between `timeoutMs` and 1.5 × `timeoutMs` after its last progress, plus up
 * to a sweep (250 ms) per check, three checks at most. Any
 * completed write (Deno's write resolves with what the socket took, partial or not) resets it,
 * so a slow but steady reader is never cut.
 */

import { type Deadline, sweeper } from "./deadlines.ts";

export interface SendProgress {
  /** A write is in flight (issued, not yet completed or failed). */
  readonly busy: boolean;
  /** Write operations completed so far (any count of bytes each). */
  readonly progress: number;
}

export class SendWatch implements Deadline {
  deadline = Infinity;
  readonly reason = "send";
  readonly #half: number;
  #seen = -1;
  #wasBusy = false;
  #stuckChecks = 0;
  #on = false;

  constructor(
    private readonly writer: SendProgress,
    timeoutMs: number,
    private readonly onStall: () => void,
  ) {
    this.#half = Math.max(1, timeoutMs / 2);
  }

  start(): void {
    if (this.#on) return;
    this.#on = true;
    this.deadline = performance.now() + this.#half;
    sweeper.add(this);
  }

  stop(): void {
    if (!this.#on) return;
    this.#on = false;
    this.deadline = Infinity;
    sweeper.delete(this);
  }

  onExpire(): void {
    const w = this.writer;
    const busy = w.busy, progress = w.progress;
    // Stuck over this interval: busy at its start and now, and no write completed in it.
    if (busy && this.#wasBusy && progress === this.#seen) this.#stuckChecks++;
    else this.#stuckChecks = 0;
    this.#seen = progress;
    this.#wasBusy = busy;
    if (this.#stuckChecks >= 2) {
      this.stop();
      this.onStall();
      return;
    }
    this.deadline = performance.now() + this.#half;
  }
}
