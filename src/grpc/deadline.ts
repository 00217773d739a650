/**
 * The gateway's side of a gRPC deadline (listener grpc_max_timeout): a response body that ends
 * the call at `deadline` with trailers `grpc-status: 4` (DEADLINE_EXCEEDED) and cancels the
 * upstream stream (RST_STREAM), whatever the backend does. The backend sees the same deadline in
 * grpc-timeout and normally ends first; this is the bound for one that does not.
 */

import type { Body, HeaderList } from "../http/exchange.ts";
import { encodeGrpcMessage, GrpcStatus } from "./status.ts";

export class GrpcDeadlineBody implements Body {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #expired = false;
  #ended = false;
  #pending: { resolve(c: Uint8Array | null): void } | null = null;

  constructor(private readonly inner: Body, deadline: number, private readonly onExpire?: () => void) {
    const ms = deadline - performance.now();
    if (ms <= 0) this.#expire();
    else this.#timer = setTimeout(() => this.#expire(), ms);
  }

  get length(): number | undefined {
    return this.inner.length;
  }

  get received(): number {
    return this.inner.received;
  }

  read(): Promise<Uint8Array | null> {
    if (this.#expired) return Promise.resolve(null);
    return new Promise<Uint8Array | null>((resolve, reject) => {
      this.#pending = { resolve };
      this.inner.read().then((c) => {
        if (this.#pending === null) return; // the deadline answered this read already
        this.#pending = null;
        if (c === null) this.#end();
        resolve(c);
      }, (e) => {
        if (this.#pending === null) return;
        this.#pending = null;
        this.#end();
        reject(e);
      });
    });
  }

  trailers(): HeaderList | undefined {
    if (this.#expired) {
      return [
        "grpc-status",
        String(GrpcStatus.DEADLINE_EXCEEDED),
        "grpc-message",
        encodeGrpcMessage("deadline exceeded at the gateway"),
      ];
    }
    return this.inner.trailers();
  }

  cancel(reason?: unknown): void {
    this.#end();
    this.inner.cancel(reason);
  }

  #end(): void {
    this.#ended = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #expire(): void {
    this.#timer = undefined;
    if (this.#ended) return;
    this.#expired = true;
    this.#ended = true;
    this.inner.cancel(new Error("gRPC deadline exceeded"));
    this.onExpire?.();
    const p = this.#pending;
    this.#pending = null;
    p?.resolve(null);
  }
}
