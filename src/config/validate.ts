/**
 * Checks that span tables or touch the file system: unique names, routes → pools,
 * alt_svc_h3 → quic listener, TLS files readable and keys private, admin exposure, and
 * features this build cannot honour (said plainly rather than ignored).
 */

import { type ConfigProblem, describeFsError } from "./errors.ts";
import type { LoadOptions, Report } from "./load.ts";
import type {
  Algorithm,
  BackendProtocol,
  GatewayConfig,
  ListenerConfig,
  ListenerProtocol,
  RouteConfig,
} from "./types.ts";
import { isLoopbackHost, isWildcardHost, parseHostPort } from "./units.ts";
import { isPrime } from "../balancer/maglev.ts";

/** Listener and backend protocols this build can serve; the rest are refused at --check. */
export const SUPPORTED_LISTENER_PROTOCOLS: ReadonlySet<ListenerProtocol> = new Set([
  "http",
  "https",
  "quic",
  "tcp",
  "udp",
]);
export const SUPPORTED_BACKEND_PROTOCOLS: ReadonlySet<BackendProtocol> = new Set(["h1", "h2", "h2c", "h3"]);

const HASH_ALGORITHMS: ReadonlySet<Algorithm> = new Set(["maglev", "ring_hash", "session_affinity"]);
/** round_robin and random are the unweighted variants of weighted_round_robin and weighted_random. */
const WEIGHT_IGNORING_ALGORITHMS: ReadonlySet<Algorithm> = new Set(["round_robin", "random"]);

const HOST_PATTERN =
  /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

export async function validateSemantics(
  cfg: GatewayConfig,
  _file: string,
  report: Report,
  opts: LoadOptions,
): Promise<void> {
  const poolNames = cfg.pools.map((p) => p.name);
  const listenerByName = new Map(cfg.listeners.map((l) => [l.name, l]));

  checkUnique(cfg.listeners.map((l) => l.name), "listeners", "listener", report);
  checkUnique(poolNames, "pools", "pool", report);
  await validateXdp(cfg, report);

  const admin = parseHostPort(cfg.observability.admin_bind);
  if (!admin) {
    report(
      "observability.admin_bind",
      `invalid address '${cfg.observability.admin_bind}'; expected "host:port", "[v6]:port" or ":port" (port 0-65535)`,
    );
  } else if (!isLoopbackHost(admin.host) && !cfg.admin.api_token_hash) {
    report(
      "admin.api_token_hash",
      `admin_bind ${cfg.observability.admin_bind} is not loopback, so admin.api_token_hash is required ` +
        `(sha256 of the bearer token that /metrics will demand)`,
      "error",
      "observability.admin_bind",
    );
  }

  // Every listener binds with reusePort, so the kernel would not catch two listeners on one
  // address: they would silently share its connections. Port 0 (any free port) never clashes.
  const binds: Bind[] = [];
  if (admin && admin.port !== 0) binds.push({ ...admin, transport: "tcp", owner: "the admin listener" });
  const usedPools = new Set<string>();
  for (const [i, l] of cfg.listeners.entries()) {
    const at = `listeners[${i}]`;
    const addr = parseHostPort(l.bind);
    if (!addr) {
      report(
        `${at}.bind`,
        `invalid address '${l.bind}'; expected "host:port", "[v6]:port" or ":port" (port 0-65535)`,
      );
    } else if (addr.port !== 0) {
      const bind: Bind = {
        ...addr,
        transport: l.protocol === "quic" || l.protocol === "udp" ? "udp" : "tcp",
        owner: `listener '${l.name}'`,
      };
      const other = binds.find((b) => overlaps(b, bind));
      if (other) {
        report(
          `${at}.bind`,
          `${bind.transport.toUpperCase()} ${l.bind} overlaps ${other.owner} (${other.host}:${other.port})`,
        );
      }
      binds.push(bind);
    }
    if (!SUPPORTED_LISTENER_PROTOCOLS.has(l.protocol)) {
      report(
        `${at}.protocol`,
        `protocol '${l.protocol}' is not available in this build yet; available: ${
          [...SUPPORTED_LISTENER_PROTOCOLS].join(", ")
        }`,
      );
    }
    const needsTls = l.protocol === "https" || l.protocol === "quic";
    if (needsTls && !l.tls) {
      report(`${at}.tls`, `protocol '${l.protocol}' needs tls = { cert = "...", key = "..." }`);
    }
    if (!needsTls && l.tls) {
      report(`${at}.tls`, `protocol '${l.protocol}' does not use TLS; remove the tls table or use https`);
    }
    if (l.tls) {
      if (l.tls.tls13_only) {
        report(
          `${at}.tls.tls13_only`,
          "cannot be enforced: Deno's TLS stack (rustls via Deno.listenTls) offers no protocol-version setting; " +
            "remove it (TLS 1.2 and 1.3 are both offered, AEAD/ECDHE suites only)",
        );
      }
      if (!opts.skipFileChecks) {
        await checkPemFile(l.tls.cert, `${at}.tls.cert`, "cert", report);
        await checkPemFile(l.tls.key, `${at}.tls.key`, "key", report);
        for (const [j, c] of l.tls.certificates.entries()) {
          await checkPemFile(c.cert, `${at}.tls.certificates[${j}].cert`, "cert", report);
          await checkPemFile(c.key, `${at}.tls.certificates[${j}].key`, "key", report);
        }
      }
      if (l.protocol === "quic" && l.tls.certificates.length > 0) {
        report(
          `${at}.tls.certificates`,
          "quic listeners serve one certificate: Deno's QUIC endpoint takes a single cert/key pair and has " +
            "no SNI resolver; remove tls.certificates or use an https listener for SNI certificates",
        );
      }
      // SNI picks one certificate per name, so a name listed twice would silently lose one.
      const certFor = new Map<string, number>();
      for (const [j, c] of l.tls.certificates.entries()) {
        for (const name of c.server_names) {
          const n = name.toLowerCase();
          if (!HOST_PATTERN.test(name)) {
            report(`${at}.tls.certificates[${j}].server_names`, `invalid server name '${name}'`);
          } else if (certFor.has(n)) {
            report(
              `${at}.tls.certificates[${j}].server_names`,
              `'${name}' is already served by ${at}.tls.certificates[${certFor.get(n)}]`,
            );
          } else certFor.set(n, j);
        }
      }
    }
    if (l.alt_svc_h3 !== undefined) {
      const target = listenerByName.get(l.alt_svc_h3);
      if (!target) {
        report(
          `${at}.alt_svc_h3`,
          `listener '${l.alt_svc_h3}' is not defined; defined listeners: ${
            [...listenerByName.keys()].join(", ")
          }`,
        );
      } else if (target.protocol !== "quic") {
        report(
          `${at}.alt_svc_h3`,
          `listener '${l.alt_svc_h3}' has protocol '${target.protocol}'; Alt-Svc h3 must name a quic listener`,
        );
      } else if (target.raw_proxy && !target.raw_proxy.alpn.includes("h3")) {
        report(
          `${at}.alt_svc_h3`,
          `listener '${l.alt_svc_h3}' relays QUIC with raw_proxy.alpn = ${
            JSON.stringify(target.raw_proxy.alpn)
          }, which does not offer h3`,
        );
      }
    }
    if (l.raw_proxy) await validateRawProxy(l, at, report, opts);
    const servesHttp = l.protocol === "http" || l.protocol === "https" ||
      (l.protocol === "quic" && !l.raw_proxy);
    if (servesHttp && l.routes.length === 0) {
      report(`${at}.routes`, "no routes: every request will get 404", "warning");
    }
    if (l.protocol === "tcp" || l.protocol === "udp") {
      const r = l.routes[0];
      if (
        l.routes.length !== 1 || !r.pool || r.host !== undefined || r.path_prefix !== undefined || r.respond
      ) {
        report(
          `${at}.routes`,
          `a ${l.protocol} listener needs exactly one route with only pool = "NAME" (no host, path_prefix or respond)`,
        );
      }
    } else if (l.proxy_protocol !== "off") {
      report(`${at}.proxy_protocol`, "proxy_protocol applies to tcp listeners only");
    }
    if (l.protocol === "udp" && l.proxy_protocol !== "off") {
      report(`${at}.proxy_protocol`, "proxy_protocol applies to tcp listeners only");
    }
    if (l.protocol !== "udp" && l.udp_max_datagram !== 65535) {
      report(`${at}.udp_max_datagram`, "udp_max_datagram applies to udp listeners only");
    }
    for (const [j, r] of l.routes.entries()) {
      const rat = `${at}.routes[${j}]`;
      if ((r.pool === undefined) === (r.respond === undefined)) {
        report(rat, 'a route needs exactly one of pool = "NAME" or respond = { ... }');
      }
      if (r.pool !== undefined) {
        usedPools.add(r.pool);
        if (!poolNames.includes(r.pool)) {
          report(
            `${rat}.pool`,
            `pool '${r.pool}' is not defined; ` +
              (poolNames.length ? `defined pools: ${poolNames.join(", ")}` : "no pools are defined"),
          );
        }
      }
      if (r.host !== undefined && !HOST_PATTERN.test(r.host)) {
        report(`${rat}.host`, `invalid host '${r.host}'; use "name.example.com" or "*.example.com"`);
      }
      const earlier = l.routes.slice(0, j).findIndex((e) => covers(e, r));
      if (earlier >= 0) {
        report(
          rat,
          `unreachable: ${at}.routes[${earlier}] matches every request this route matches`,
          "warning",
        );
      }
    }
  }

  // [passthrough] binds its own UDP socket: it must not overlap a udp/quic listener.
  const pt = cfg.passthrough;
  if (pt) {
    const addr = parseHostPort(pt.bind);
    if (!addr) {
      report(
        "passthrough.bind",
        `invalid address '${pt.bind}'; expected "host:port", "[v6]:port" or ":port" (port 0-65535)`,
      );
    } else if (addr.port !== 0) {
      const bind: Bind = { ...addr, transport: "udp", owner: "[passthrough]" };
      const other = binds.find((b) => overlaps(b, bind));
      if (other) {
        report("passthrough.bind", `UDP ${pt.bind} overlaps ${other.owner} (${other.host}:${other.port})`);
      }
      binds.push(bind);
    }
    const pool = cfg.pools.find((p) => p.name === pt.pool);
    if (!pool) {
      report(
        "passthrough.pool",
        `pool '${pt.pool}' is not defined; ` +
          (poolNames.length ? `defined pools: ${poolNames.join(", ")}` : "no pools are defined"),
      );
    } else {
      usedPools.add(pt.pool);
      if (!isPrime(pool.maglev_table_size)) {
        report(
          "passthrough.pool",
          `pool '${pt.pool}' has maglev_table_size ${pool.maglev_table_size}, not prime ` +
            "(the passthrough spreads new connections by Maglev)",
        );
      }
    }
    if (listenerByName.has("passthrough")) {
      report(
        "passthrough",
        "a listener is named 'passthrough', the name the passthrough's port is reported under; rename it",
      );
    }
  }

  // The XDP fast path fills its Maglev table from its pool: that pool is in use too.
  if (cfg.runtime.xdp_enabled && cfg.xdp?.pool) usedPools.add(cfg.xdp.pool);

  for (const [i, p] of cfg.pools.entries()) {
    const at = `pools[${i}]`;
    if (!usedPools.has(p.name)) report(at, `pool '${p.name}' is not used by any route`, "warning");
    if (HASH_ALGORITHMS.has(p.algorithm) && !p.hash_key) {
      report(`${at}.hash_key`, `algorithm '${p.algorithm}' has no hash_key; hashing on client_ip`, "warning");
    }
    if (!HASH_ALGORITHMS.has(p.algorithm) && p.hash_key) {
      report(`${at}.hash_key`, `algorithm '${p.algorithm}' does not hash; hash_key is ignored`, "warning");
    }
    if (WEIGHT_IGNORING_ALGORITHMS.has(p.algorithm) && p.backends.some((b) => b.weight !== 1)) {
      report(
        `${at}.backends`,
        `algorithm '${p.algorithm}' ignores weights; use weighted_${p.algorithm}`,
        "warning",
      );
    }
    if (p.algorithm === "maglev" && !isPrime(p.maglev_table_size)) {
      report(
        `${at}.maglev_table_size`,
        `${p.maglev_table_size} is not prime (Maglev needs a prime table size, e.g. 65537)`,
      );
    }
    if (p.health?.kind === "grpc") {
      const h1 = p.backends.filter((b) => b.protocol !== "h2" && b.protocol !== "h2c").map((b) => b.address);
      if (h1.length > 0) {
        report(
          `${at}.health.kind`,
          `grpc health checks speak HTTP/2: backends ${h1.join(", ")} are not h2 or h2c; use http or tcp`,
        );
      }
    }
    if (p.health && !validStatusRanges(p.health.expected_status)) {
      report(
        `${at}.health.expected_status`,
        `'${p.health.expected_status}' has a status outside 100-599 or a range whose end is below its start`,
      );
    }
    if (p.outlier && p.outlier.max_ejection_time < p.outlier.base_ejection_time) {
      report(`${at}.outlier.max_ejection_time`, "must be at least base_ejection_time");
    }
    const seen = new Set<string>();
    for (const [j, b] of p.backends.entries()) {
      const bat = `${at}.backends[${j}]`;
      const baddr = parseHostPort(b.address);
      if (!baddr || b.address.startsWith(":") || baddr.port === 0 || isWildcardHost(baddr.host)) {
        report(`${bat}.address`, `invalid address '${b.address}'; expected "host:port" with a port 1-65535`);
      }
      const id = `${b.protocol}://${b.address}`;
      if (seen.has(id)) report(`${bat}.address`, `backend ${id} appears twice in pool '${p.name}'`);
      seen.add(id);
      if (!SUPPORTED_BACKEND_PROTOCOLS.has(b.protocol)) {
        report(
          `${bat}.protocol`,
          `backend protocol '${b.protocol}' is not available in this build yet; available: ${
            [...SUPPORTED_BACKEND_PROTOCOLS].join(", ")
          }`,
        );
      }
      if (b.protocol === "h2c" && b.tls) {
        report(`${bat}.tls`, 'h2c is cleartext; remove tls or use protocol = "h2"');
      }
      if (b.protocol === "h3" && b.tls?.verify === false) {
        report(
          `${bat}.tls.verify`,
          "h3 backends are always verified: Deno's QUIC client has no way to skip certificate checks; " +
            "give the backend's CA in tls.ca instead",
        );
      }
      if (b.tls?.ca && !opts.skipFileChecks) await checkPemFile(b.tls.ca, `${bat}.tls.ca`, "ca", report);
    }
    const h3Backend = p.backends.find((b) => b.protocol === "h3");
    if (h3Backend && p.health?.kind === "grpc") {
      report(
        `${at}.health.kind`,
        `gRPC health checks speak HTTP/2, so they cannot check h3 backend ${h3Backend.address}; ` +
          'use kind = "http" (a request over HTTP/3) or "tcp" (the QUIC handshake)',
      );
    }
    if (p.backends.length > 0 && p.backends.every((b) => b.weight === 0)) {
      report(`${at}.backends`, "every backend has weight 0: the pool can never be picked");
    }
  }
}

/** ALPN protocol ids are 1-255 bytes (RFC 7301 §3.1). */
const MAX_ALPN_BYTES = 255;

/**
 * `[listeners.raw_proxy]` (QUIC Mode B): only on quic listeners, a real backend address, a usable
 * ALPN list, and no routes — the relay never looks at requests, so a route would be a promise
 * the gateway does not keep.
 */
async function validateRawProxy(l: ListenerConfig, at: string, report: Report, opts: LoadOptions) {
  const rp = l.raw_proxy!;
  const rat = `${at}.raw_proxy`;
  if (l.protocol !== "quic") {
    report(rat, `raw_proxy relays QUIC connections; it needs protocol = "quic", not '${l.protocol}'`);
  }
  const addr = parseHostPort(rp.backend);
  if (!addr || rp.backend.startsWith(":") || addr.port === 0 || isWildcardHost(addr.host)) {
    report(`${rat}.backend`, `invalid address '${rp.backend}'; expected "host:port" with a port 1-65535`);
  }
  if (rp.alpn.length === 0) {
    report(`${rat}.alpn`, 'must offer at least one ALPN protocol (QUIC requires ALPN), e.g. ["h3"]');
  }
  const encoder = new TextEncoder();
  for (const [j, p] of rp.alpn.entries()) {
    const n = encoder.encode(p).length;
    if (n === 0 || n > MAX_ALPN_BYTES) {
      report(`${rat}.alpn`, `ALPN protocol ${JSON.stringify(p)} must be 1-${MAX_ALPN_BYTES} bytes`);
    } else if (rp.alpn.indexOf(p) !== j) {
      report(`${rat}.alpn`, `ALPN protocol ${JSON.stringify(p)} is listed twice`);
    }
  }
  if (rp.server_name !== undefined) {
    const name = rp.server_name;
    const literal = parseHostPort(`${name.includes(":") ? `[${name}]` : name}:1`);
    if (name.startsWith("*.") || !(HOST_PATTERN.test(name) || (literal && !isWildcardHost(literal.host)))) {
      report(`${rat}.server_name`, `invalid server name '${name}'; use a DNS name or an IP address`);
    }
  }
  if (rp.ca && !opts.skipFileChecks) await checkPemFile(rp.ca, `${rat}.ca`, "ca", report);
  if (l.routes.length > 0) {
    report(
      `${at}.routes`,
      `a raw_proxy listener relays every connection to raw_proxy.backend (${rp.backend}) and never reads ` +
        "requests, so routes are not used; remove them",
    );
  }
}

function checkUnique(names: string[], path: string, what: string, report: Report) {
  const seen = new Map<string, number>();
  for (const [i, n] of names.entries()) {
    const first = seen.get(n);
    if (first !== undefined) {
      report(`${path}[${i}].name`, `duplicate ${what} name '${n}' (first defined at ${path}[${first}])`);
    } else seen.set(n, i);
  }
}

/** PEM files are small; anything bigger is not one (and is not read whole). */
const MAX_PEM_BYTES = 1024 * 1024;

/**
 * A TLS file must be a regular readable file holding the right PEM block, and a private key
 * must not be readable or writable by group or others (checked first: saying "chmod 600"
 * beats reading a leaked key).
 */
async function checkPemFile(file: string, path: string, kind: "cert" | "key" | "ca", report: Report) {
  try {
    const info = await Deno.stat(file);
    if (!info.isFile) {
      report(path, `'${file}' is not a regular file`);
      return;
    }
    if (kind === "key" && info.mode !== null && (info.mode & 0o077) !== 0) {
      report(
        path,
        `private key '${file}' is accessible by group or others (mode ${
          (info.mode & 0o777).toString(8)
        }); chmod 600 it`,
      );
      return;
    }
    if (info.size > MAX_PEM_BYTES) {
      report(path, `'${file}' is ${info.size} bytes; a PEM file is at most ${MAX_PEM_BYTES} bytes`);
      return;
    }
    const text = new TextDecoder().decode(await Deno.readFile(file));
    const ok = kind === "key"
      ? /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)
      : text.includes("-----BEGIN CERTIFICATE-----");
    if (!ok) {
      report(
        path,
        `'${file}' holds no PEM ${kind === "key" ? "private key" : "certificate"} (-----BEGIN ${
          kind === "key" ? "PRIVATE KEY" : "CERTIFICATE"
        }----- block)`,
      );
    }
  } catch (e) {
    report(path, `cannot read '${file}': ${describeFsError(e)}`);
  }
}

/** "200-399,404": the schema pattern checked the shape; this checks the numbers. */
function validStatusRanges(text: string): boolean {
  return text.split(",").every((part) => {
    const [lo, hi = lo] = part.split("-").map((n) => Number(n.trim()));
    return lo >= 100 && hi <= 599 && lo <= hi;
  });
}

/** True when route `a` matches every request `b` matches (so `b`, listed after `a`, never runs). */
function covers(a: RouteConfig, b: RouteConfig): boolean {
  const aHost = a.host?.toLowerCase(), bHost = b.host?.toLowerCase();
  const hostCovered = aHost === undefined || aHost === bHost ||
    (aHost.startsWith("*.") && bHost !== undefined && bHost.endsWith(aHost.slice(1)) &&
      bHost.length > aHost.length - 1);
  const pathCovered = a.path_prefix === undefined ||
    (b.path_prefix !== undefined && b.path_prefix.startsWith(a.path_prefix));
  return hostCovered && pathCovered;
}

/** True for addresses only this host can reach (kept here for callers of validate.ts). */
export const isLoopback = isLoopbackHost;

interface Bind {
  host: string;
  port: number;
  transport: "tcp" | "udp";
  owner: string;
}

/** Same port and transport, and the same host or a wildcard on either side. */
function overlaps(a: Bind, b: Bind): boolean {
  if (a.port !== b.port || a.transport !== b.transport) return false;
  return a.host.toLowerCase() === b.host.toLowerCase() || isWildcardHost(a.host) || isWildcardHost(b.host);
}

export type { ConfigProblem };

/**
 * runtime.xdp_enabled needs an [xdp] table whose pool exists; the fast path's own rules (IPv4
 * only, prime table, …) are checked by src/xdp/options.ts, loaded by dynamic import so a
 * gateway with XDP off never loads anything under src/xdp.
 */
async function validateXdp(cfg: GatewayConfig, report: Report): Promise<void> {
  const x = cfg.xdp;
  if (!cfg.runtime.xdp_enabled) {
    if (x) report("xdp", "[xdp] is set but runtime.xdp_enabled = false; it is ignored", "warning");
    return;
  }
  if (!x) {
    report("runtime.xdp_enabled", "xdp_enabled = true needs an [xdp] table (interfaces, vip, port, pool)");
    return;
  }
  const pool = cfg.pools.find((p) => p.name === x.pool);
  if (!pool) {
    report(
      "xdp.pool",
      `pool '${x.pool}' is not defined; defined pools: ${cfg.pools.map((p) => p.name).join(", ") || "none"}`,
    );
    return;
  }
  const { xdpOptionsFromConfig } = await import("../xdp/from_config.ts");
  const { resolveXdpOptions, XdpConfigError } = await import("../xdp/options.ts");
  try {
    resolveXdpOptions(xdpOptionsFromConfig(cfg));
  } catch (e) {
    if (!(e instanceof XdpConfigError)) throw e;
    for (const problem of e.problems) report("xdp", problem);
  }
}
