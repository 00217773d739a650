/**
 * Checks that span tables or touch the file system: unique names, routes → pools,
 * alt_svc_h3 → quic listener, TLS files readable and keys private, admin exposure, and
 * features this build cannot honour (said plainly rather than ignored).
 */

import type { ConfigProblem } from "./errors.ts";
import type { LoadOptions } from "./load.ts";
import { describeFsError } from "./load.ts";
import type { Algorithm, BackendProtocol, GatewayConfig, ListenerProtocol } from "./types.ts";
import { parseHostPort } from "./units.ts";
import { isPrime } from "../balancer/maglev.ts";

type Report = (path: string, message: string, severity?: "error" | "warning") => void;

/** Listener and backend protocols this build can serve; the rest are refused at --check. */
export const SUPPORTED_LISTENER_PROTOCOLS: ReadonlySet<ListenerProtocol> = new Set(["http", "https"]);
export const SUPPORTED_BACKEND_PROTOCOLS: ReadonlySet<BackendProtocol> = new Set(["h1"]);

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

  const admin = parseHostPort(cfg.observability.admin_bind);
  if (!admin) {
    report(
      "observability.admin_bind",
      `invalid address '${cfg.observability.admin_bind}'; expected "host:port"`,
    );
  } else if (!isLoopback(admin.host) && !cfg.admin.api_token_hash) {
    report(
      "admin.api_token_hash",
      `admin_bind ${cfg.observability.admin_bind} is not loopback, so admin.api_token_hash is required ` +
        `(sha256 of the bearer token that /metrics will demand)`,
    );
  }

  const tcpBinds = new Map<string, string>();
  const usedPools = new Set<string>();
  for (const [i, l] of cfg.listeners.entries()) {
    const at = `listeners[${i}]`;
    const addr = parseHostPort(l.bind);
    if (!addr) report(`${at}.bind`, `invalid address '${l.bind}'; expected "host:port" or "[v6]:port"`);
    else {
      const transport = l.protocol === "quic" || l.protocol === "udp" ? "udp" : "tcp";
      const key = `${transport}/${addr.host}:${addr.port}`;
      const other = tcpBinds.get(key);
      if (other) {
        report(`${at}.bind`, `${transport.toUpperCase()} ${l.bind} is already bound by listener '${other}'`);
      }
      tcpBinds.set(key, l.name);
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
        await checkReadable(l.tls.cert, `${at}.tls.cert`, false, report);
        await checkReadable(l.tls.key, `${at}.tls.key`, true, report);
        for (const [j, c] of l.tls.certificates.entries()) {
          await checkReadable(c.cert, `${at}.tls.certificates[${j}].cert`, false, report);
          await checkReadable(c.key, `${at}.tls.certificates[${j}].key`, true, report);
        }
      }
      for (const [j, c] of l.tls.certificates.entries()) {
        for (const name of c.server_names) {
          if (!HOST_PATTERN.test(name)) {
            report(`${at}.tls.certificates[${j}].server_names`, `invalid server name '${name}'`);
          }
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
      }
    }
    if ((l.protocol === "http" || l.protocol === "https") && l.routes.length === 0) {
      report(`${at}.routes`, "no routes: every request will get 404", "warning");
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
    }
  }

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
      report(
        `${at}.health.kind`,
        "grpc health checks need the HTTP/2 client, which is not in this build yet; use http or tcp",
      );
    }
    if (p.outlier && p.outlier.max_ejection_time < p.outlier.base_ejection_time) {
      report(`${at}.outlier.max_ejection_time`, "must be at least base_ejection_time");
    }
    const seen = new Set<string>();
    for (const [j, b] of p.backends.entries()) {
      const bat = `${at}.backends[${j}]`;
      if (!parseHostPort(b.address) || b.address.startsWith(":")) {
        report(`${bat}.address`, `invalid address '${b.address}'; expected "host:port"`);
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
      if (b.tls?.ca && !opts.skipFileChecks) await checkReadable(b.tls.ca, `${bat}.tls.ca`, false, report);
    }
    if (p.backends.length > 0 && p.backends.every((b) => b.weight === 0)) {
      report(`${at}.backends`, "every backend has weight 0: the pool can never be picked");
    }
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

async function checkReadable(file: string, path: string, isKey: boolean, report: Report) {
  try {
    const info = await Deno.stat(file);
    if (!info.isFile) {
      report(path, `'${file}' is not a regular file`);
      return;
    }
    if (isKey && info.mode !== null && (info.mode & 0o077) !== 0) {
      report(
        path,
        `private key '${file}' is readable by group or others (mode ${
          (info.mode & 0o777).toString(8)
        }); chmod 600 it`,
      );
      return;
    }
    const f = await Deno.open(file, { read: true });
    f.close();
  } catch (e) {
    report(path, `cannot read '${file}': ${describeFsError(e)}`);
  }
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export type { ConfigProblem };
