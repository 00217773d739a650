/**
 * The `grpc-timeout` request header: "TimeoutValue TimeoutUnit", at most 8 ASCII digits followed
 * by H, M, S, m (milli), u (micro) or n (nano). The gateway parses it to clamp it to the listener's
 * grpc_max_timeout and to enforce the resulting deadline itself.
 */

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** Milliseconds of a grpc-timeout value; undefined when malformed (the header is then ignored). */
export function parseGrpcTimeout(v: string): number | undefined {
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]];
}

/** A grpc-timeout value for `ms` (≥ 0): the finest unit that fits in 8 digits. */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  if (whole <= 99_999_999) return `${whole}m`;
  const s = Math.ceil(whole / 1000);
  if (s <= 99_999_999) return `${s}S`;
  return `${Math.min(99_999_999, Math.ceil(s / 60))}M`;
}

/**
 * The deadline a call gets through a listener with cap `maxMs`: the client's own when shorter,
 * else the cap. Returns the milliseconds and whether the header must be rewritten.
 */
export function clampGrpcTimeout(
  header: string | undefined,
  maxMs: number,
): { ms: number; rewrite: boolean } {
  const asked = header === undefined ? undefined : parseGrpcTimeout(header);
  if (asked !== undefined && asked <= maxMs) return { ms: asked, rewrite: false };
  return { ms: maxMs, rewrite: true };
}
