/**
 * Units used by the config contract: durations ("250ms", "10s", "5m", "1h"), sizes ("64KiB",
 * "64MiB", "1GiB", plain "512B") and addresses ("host:port", "[v6]:port", ":port"). Every
 * parser returns `undefined` on bad input so the caller can name the key in its own message.
 */

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
};

/**
 * The longest duration a timer can hold: setTimeout stores a signed 32-bit millisecond count
 * and fires at once when given more, so a longer timeout would silently become "immediately".
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** "10s" → 10000 (milliseconds). Integers or decimals, one unit, no sign, at most MAX_DURATION_MS. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Math.round(Number(m[1]) * DURATION_UNITS[m[2]]);
  return Number.isFinite(ms) ? ms : undefined;
}

/** "64MiB" → 67108864 (bytes). Integers or decimals, one unit, no sign; undefined past 2^53. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)$/.exec(text.trim());
  if (!m) return undefined;
  const bytes = Math.round(Number(m[1]) * SIZE_UNITS[m[2]]);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export function formatSize(bytes: number): string {
  for (const [unit, n] of [["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return `${bytes}B`;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
// DNS labels; '_' is allowed because resolvers accept it and container service names use it.
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;
/^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * "host:port", "[v6]:port" or ":port" (all IPv4 interfaces) → parts; undefined when malformed.
 * The host must be an IPv4 address, a DNS name, or a bracketed IPv6 address; port 0..65535
 * (0 = any free port, which listeners allow and backends don't: see validate.ts).
 */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]\s]*)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  if (m[1] !== undefined) return isIPv6(m[1]) ? { host: m[1], port } : undefined;
  const host = m[2];
  if (host === "") return { host: "0.0.0.0", port };
  // A dotted all-numeric name is meant as an IPv4 address, so it must be a valid one.
  if (/^[\d.]+$/.test(host)) return IPV4.test(host) ? { host, port } : undefined;
  return HOSTNAME.test(host) ? { host, port } : undefined;
}

/** The URL parser is the WHATWG IPv6 grammar, so it is the validator (no zone ids). */
function isIPv6(text: string): boolean {
  try {
    new URL(`http://[${text}]/`);
    return true;
  } catch {
    return false;
  }
}

/** True for addresses that only this host can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** True for the all-interfaces addresses, which overlap every address of their family. */
export function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || /^[0:]+$/.test(host);
}
