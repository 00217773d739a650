/**
 * A small client for etcd's v3 JSON gateway (grpc-gateway) over plain `fetch`: range, put,
 * delete, txn (compare-and-swap on mod_revision), lease grant/keepalive/revoke, auth, and
 * watch as one streaming POST /v3/watch read as newline-delimited JSON.
 *
 * Why not an npm client: the well-kept one (etcd3) speaks gRPC through @grpc/grpc-js, whose
 * HTTP/2 stack is node:http2 — which the design measured as crashing Deno processes. The JSON
 * gateway is part of etcd itself (3.4 serves it under /v3/, 3.3 used /v3beta/), needs only
 * HTTP/1.1 fetch, and the handful of calls the control plane needs fit in one file.
 *
 * Wire notes (checked against etcd 3.4.23): keys and values are base64; int64 fields
 * (revisions, lease IDs, TTLs) are JSON strings and fields with a zero value are omitted
 * (`succeeded: false`, a PUT event's `type`, a missing lease's `TTL`). Lease IDs exceed 2^53,
 * so they stay strings here; revisions are converted to numbers (they never get near 2^53).
 * Streaming answers wrap each message as `{"result": …}` or `{"error": …}`.
 */

export interface EtcdTls {
  /** PEM CA certificates for the server (system roots when absent). */
  caCerts?: string[];
  /** PEM client certificate and key (etcd --client-cert-auth). */
  cert?: string;
  key?: string;
}

export interface EtcdOptions {
  endpoints: readonly string[];
  username?: string;
  password?: string;
  tls?: EtcdTls;
  /** Per request (for a watch: until the stream is established). */
  requestTimeoutMs?: number;
}

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  /** "0" when the key has no lease. */
  lease: string;
}

export interface RangeResult {
  /** The store's revision when the range was served. */
  revision: number;
  kvs: KeyValue[];
}

export interface WatchEvent {
  type: "PUT" | "DELETE";
  kv: KeyValue;
}

export interface WatchMessage {
  revision: number;
  created: boolean;
  canceled: boolean;
  /** Set when the watch was canceled because its start revision was compacted away. */
  compactRevision: number;
  cancelReason: string;
  events: WatchEvent[];
}

/** etcd answered, with an error (bad request, auth, txn shape…). */
export class EtcdError extends Error {
  constructor(message: string, readonly code?: number, readonly status?: number) {
    super(message);
    this.name = "EtcdError";
  }
}

/** No endpoint answered (connection refused, timeout, no leader). */
export class EtcdUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EtcdUnavailableError";
  }
}

/** gRPC status codes that mean "try another endpoint / later", not "your request is wrong". */
const RETRYABLE_CODES = new Set([4, /* deadline */ 14 /* unavailable */]);
const UNAUTHENTICATED = 16;
/** A single streamed JSON message larger than this is refused (a config is at most 1 MiB). */
const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

const enc = new TextEncoder();
const dec = new TextDecoder();

export function toBase64(s: string): string {
  return enc.encode(s).toBase64();
}

export function fromBase64(s: string | undefined): string {
  if (!s) return "";
  return dec.decode(Uint8Array.fromBase64(s));
}

/** The exclusive end of the range "every key starting with prefix" (etcd's prefix convention). */
export function prefixEnd(prefix: string): string {
  const bytes = enc.encode(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 0xff) {
      const out = bytes.slice(0, i + 1);
      out[i]++;
      return out.toBase64();
    }
  }
  return toBase64("\0");
}

function num(v: unknown): number {
  const n = typeof v === "string" ? Number(v) : typeof v === "number" ? v : 0;
  return Number.isFinite(n) ? n : 0;
}

// deno-lint-ignore no-explicit-any
type Json = any;

function toKv(kv: Json): KeyValue {
  return {
    key: fromBase64(kv?.key),
    value: fromBase64(kv?.value),
    createRevision: num(kv?.create_revision),
    modRevision: num(kv?.mod_revision),
    version: num(kv?.version),
    lease: String(kv?.lease ?? "0"),
  };
}

function describe(e: unknown): string {
  if (e instanceof DOMException && e.name === "TimeoutError") return "timed out";
  let msg = e instanceof Error ? e.message : String(e);
  // fetch says only "fetch failed"; the reason (connection refused, DNS…) is at the end of
  // its cause, after "error sending request for url (…): client error (Connect): ".
  const cause = (e as { cause?: unknown })?.cause;
  if (cause instanceof Error && cause.message) {
    const m = cause.message.split("\n")[0];
    const cut = m.lastIndexOf("): ");
    msg = cut >= 0 ? m.slice(cut + 3) : m;
  }
  return msg.split("\n")[0];
}

export class EtcdClient {
  readonly endpoints: readonly string[];
  #current = 0;
  #token: string | undefined;
  #authing: Promise<string> | undefined;
  readonly #timeout: number;
  readonly #client: Deno.HttpClient | undefined;

  constructor(readonly opts: EtcdOptions) {
    if (opts.endpoints.length === 0) throw new EtcdError("no etcd endpoints given");
    this.endpoints = opts.endpoints.map((e) => e.replace(/\/+$/, ""));
    this.#timeout = opts.requestTimeoutMs ?? 2000;
    const tls = opts.tls;
    if (tls && (tls.caCerts?.length || tls.cert)) {
      this.#client = Deno.createHttpClient({
        caCerts: tls.caCerts,
        ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
      });
    }
  }

  /** The endpoint the next request goes to first (the last one that answered). */
  get endpoint(): string {
    return this.endpoints[this.#current];
  }

  close(): void {
    this.#client?.close();
  }

  async range(key: string, opts: { prefix?: boolean; revision?: number; keysOnly?: boolean } = {}) {
    const body: Json = { key: toBase64(key) };
    if (opts.prefix) body.range_end = prefixEnd(key);
    if (opts.revision) body.revision = String(opts.revision);
    if (opts.keysOnly) body.keys_only = true;
    const r = await this.call("kv/range", body);
    return { revision: num(r.header?.revision), kvs: (r.kvs ?? []).map(toKv) } as RangeResult;
  }

  /** The value and mod_revision of one key (modRevision 0: absent). */
  async get(key: string): Promise<{ revision: number; value?: string; modRevision: number }> {
    const r = await this.range(key);
    const kv = r.kvs[0];
    return { revision: r.revision, value: kv?.value, modRevision: kv?.modRevision ?? 0 };
  }

  async put(key: string, value: string, opts: { lease?: string } = {}): Promise<number> {
    const body: Json = { key: toBase64(key), value: toBase64(value) };
    if (opts.lease && opts.lease !== "0") body.lease = opts.lease;
    const r = await this.call("kv/put", body);
    return num(r.header?.revision);
  }

  async delete(key: string, opts: { prefix?: boolean } = {}): Promise<number> {
    const body: Json = { key: toBase64(key) };
    if (opts.prefix) body.range_end = prefixEnd(key);
    const r = await this.call("kv/deleterange", body);
    return num(r.deleted);
  }

  /**
   * Compare-and-swap: writes `value` only if the key's mod_revision is still `expected`
   * (0 = the key must not exist). Returns whether it was written, the store revision and, when
   * refused, the key's current mod_revision.
   */
  async putIfModRevision(
    key: string,
    value: string,
    expected: number,
  ): Promise<{ succeeded: boolean; revision: number; currentModRevision: number }> {
    const k = toBase64(key);
    const r = await this.call("kv/txn", {
      compare: [{ key: k, target: "MOD", result: "EQUAL", mod_revision: String(expected) }],
      success: [{ request_put: { key: k, value: toBase64(value) } }],
      failure: [{ request_range: { key: k, keys_only: true } }],
    });
    const succeeded = r.succeeded === true;
    let current = 0;
    if (!succeeded) {
      const kvs = r.responses?.[0]?.response_range?.kvs ?? [];
      current = num(kvs[0]?.mod_revision);
    }
    return { succeeded, revision: num(r.header?.revision), currentModRevision: current };
  }

  async leaseGrant(ttlSeconds: number): Promise<{ id: string; ttl: number }> {
    const r = await this.call("lease/grant", { TTL: String(ttlSeconds) });
    if (r.error) throw new EtcdError(`lease grant: ${r.error}`);
    return { id: String(r.ID), ttl: num(r.TTL) };
  }

  /** Renews a lease once; returns its remaining TTL in seconds, 0 when it no longer exists. */
  async leaseKeepAlive(id: string): Promise<number> {
    const r = await this.call("lease/keepalive", { ID: id });
    return num((r.result ?? r).TTL);
  }

  async leaseRevoke(id: string): Promise<void> {
    try {
      await this.call("lease/revoke", { ID: id });
    } catch (e) {
      // An already-expired lease is what revoking wanted anyway.
      if (!(e instanceof EtcdError && /not found/i.test(e.message))) throw e;
    }
  }

  /**
   * One watch stream on `key` from `startRevision`. Yields every message until the stream ends
   * (etcd or the network went away: the caller reconnects) or `signal` aborts it. Establishing
   * the stream is bounded by the request timeout; an established stream has no timeout.
   */
  async *watch(key: string, startRevision: number, signal: AbortSignal): AsyncGenerator<WatchMessage> {
    const body = JSON.stringify({
      create_request: { key: toBase64(key), start_revision: String(Math.max(0, startRevision)) },
    });
    const res = await this.#send("watch", body, signal, true);
    if (!res.body) throw new EtcdUnavailableError("watch: empty response");
    const reader = res.body.getReader();
    // Pieces of the line being received; joined once its newline arrives (no quadratic copying).
    let parts: Uint8Array[] = [];
    let partBytes = 0;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        let chunk = value;
        let nl: number;
        while ((nl = chunk.indexOf(10)) >= 0) {
          parts.push(chunk.subarray(0, nl));
          const whole = new Uint8Array(partBytes + nl);
          let off = 0;
          for (const p of parts) {
            whole.set(p, off);
            off += p.length;
          }
          parts = [];
          partBytes = 0;
          chunk = chunk.subarray(nl + 1);
          const line = dec.decode(whole).trim();
          if (line) yield parseWatchLine(line);
        }
        if (chunk.length > 0) {
          // Copied: the stream may reuse the chunk's buffer for the next read.
          parts.push(chunk.slice());
          partBytes += chunk.length;
        }
        if (partBytes > MAX_MESSAGE_BYTES) throw new EtcdError("watch: message larger than 8 MiB");
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  /** One unary call: JSON in, JSON out, failing over across endpoints. */
  async call(path: string, body: Json): Promise<Json> {
    const text = JSON.stringify(body);
    const res = await this.#send(path, text, undefined, false);
    return await res.json();
  }

  async #send(
    path: string,
    body: string,
    signal: AbortSignal | undefined,
    stream: boolean,
  ): Promise<Response> {
    let reauthed = false;
    const errors: string[] = [];
    for (let tried = 0; tried < this.endpoints.length; tried++) {
      const i = (this.#current + tried) % this.endpoints.length;
      const endpoint = this.endpoints[i];
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (this.opts.username !== undefined && path !== "auth/authenticate") {
        try {
          headers.authorization = await this.#authenticate();
        } catch (e) {
          if (e instanceof EtcdUnavailableError) {
            errors.push(e.message);
            continue;
          }
          throw e;
        }
      }
      // For a stream, the timer bounds only the wait for the response head.
      const timer = new AbortController();
      const timeoutId = setTimeout(
        () => timer.abort(new DOMException("timed out", "TimeoutError")),
        this.#timeout,
      );
      const signals = signal ? [timer.signal, signal] : [timer.signal];
      let res: Response;
      try {
        res = await fetch(`${endpoint}/v3/${path}`, {
          method: "POST",
          headers,
          body,
          signal: AbortSignal.any(signals),
          client: this.#client,
        });
        if (!stream) {
          // Read the whole body under the same timer: a stalled server must not hang a call.
          const bytes = new Uint8Array(await res.arrayBuffer());
          res = new Response(bytes, { status: res.status, headers: res.headers });
        }
      } catch (e) {
        clearTimeout(timeoutId);
        if (signal?.aborted) throw e;
        errors.push(`${endpoint}: ${describe(e)}`);
        continue;
      }
      clearTimeout(timeoutId);
      if (res.ok) {
        this.#current = i;
        return res;
      }
      const err: Json = await res.json().catch(() => ({}));
      const code = typeof err.code === "number" ? err.code : undefined;
      const message = String(err.message ?? err.error ?? `HTTP ${res.status}`);
      if (code === UNAUTHENTICATED && this.opts.username !== undefined && !reauthed) {
        // The token expired (etcd's simple tokens live 5 min by default): log in again once.
        reauthed = true;
        this.#token = undefined;
        tried--;
        continue;
      }
      if (code !== undefined && RETRYABLE_CODES.has(code)) {
        errors.push(`${endpoint}: ${message}`);
        continue;
      }
      throw new EtcdError(message, code, res.status);
    }
    throw new EtcdUnavailableError(`no etcd endpoint answered (${errors.join("; ") || "none tried"})`);
  }

  /** "Authorization" value for the configured user, logging in when there is no token yet. */
  #authenticate(): Promise<string> {
    if (this.#token) return Promise.resolve(this.#token);
    this.#authing ??= (async () => {
      try {
        const res = await this.#send(
          "auth/authenticate",
          JSON.stringify({ name: this.opts.username, password: this.opts.password ?? "" }),
          undefined,
          false,
        );
        const r = await res.json();
        if (!r.token) throw new EtcdError("authentication answered without a token");
        this.#token = String(r.token);
        return this.#token;
      } finally {
        this.#authing = undefined;
      }
    })();
    return this.#authing;
  }
}

function parseWatchLine(line: string): WatchMessage {
  let msg: Json;
  try {
    msg = JSON.parse(line);
  } catch {
    throw new EtcdError(`watch: not JSON: ${line.slice(0, 80)}`);
  }
  if (msg.error) {
    const e = msg.error;
    throw new EtcdError(`watch: ${e.message ?? JSON.stringify(e)}`, e.grpc_code ?? e.code);
  }
  const r = msg.result ?? msg;
  return {
    revision: num(r.header?.revision),
    created: r.created === true,
    canceled: r.canceled === true,
    compactRevision: num(r.compact_revision),
    cancelReason: String(r.cancel_reason ?? ""),
    events: (r.events ?? []).map((ev: Json) => ({
      type: ev.type === "DELETE" ? "DELETE" : "PUT",
      kv: toKv(ev.kv),
    })),
  };
}
