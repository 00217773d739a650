/**
 * The table of bad configs: each row is a file the gateway must refuse, with the exact key
 * path of the problem, a fragment of its message and, where the text has one, line:column.
 * Every row also checks the printed form: one line per problem, naming the file, no stack.
 */
import assert from "node:assert/strict";
import { formatProblem, MAX_PRINTED_PROBLEMS } from "../../../src/config/errors.ts";
import { MAX_CONFIG_BYTES } from "../../../src/config/load.ts";
import { type CertDir, listener, loadFile, loadToml, makeCerts, pool } from "./helpers.ts";

interface Row {
  name: string;
  /** The config text, or a function of the generated cert files. */
  toml?: string | ((c: CertDir) => string);
  /** File-level rows: writes something else than a config at the given path. */
  file?: (path: string) => Promise<void>;
  /** Exact key path of the problem ("" for file-level problems). */
  path: string;
  /** A fragment of its message (a string, or a function of the cert files). */
  message: string | ((c: CertDir) => string);
  /** "line:column" when the problem has a place in the text. */
  at?: string;
}

const OK_LISTENER = listener();
const OK_POOL = pool();
const tlsListener = (tls: string, protocol = "https") =>
  listener(`tls = ${tls}`).replace('protocol = "http"', `protocol = "${protocol}"`);
/** A quic listener with `raw_proxy = { <raw> }` and no routes unless given (QUIC Mode B). */
const rawListener = (c: CertDir, raw: string, routes = "", protocol = "quic") =>
  `[[listeners]]\nname = "q"\nbind = "127.0.0.1:0"\nprotocol = "${protocol}"\n` +
  (protocol === "http" ? "" : `tls = { cert = "${c.cert}", key = "${c.key}" }\n`) +
  `raw_proxy = { ${raw} }\n${routes}\n`;

const ROWS: Row[] = [
  // ── wrong types ──
  {
    name: "string where an integer is expected",
    toml: `[[listeners]]\nname = "web"\nbind = "127.0.0.1:0"\nprotocol = "http"\nmax_connections = "many"\n`,
    path: "listeners[0].max_connections",
    message: "expected an integer, got string",
    at: "5:1",
  },
  {
    name: "a gRPC health check on a pool with an h3 backend",
    toml: OK_LISTENER +
      `[[pools]]\nname = "api"\n[pools.health]\nkind = "grpc"\n[[pools.backends]]\naddress = "127.0.0.1:9"\nprotocol = "h3"\n`,
    path: "pools[0].health.kind",
    message: "gRPC health checks speak HTTP/2",
  },
  {
    name: "udp_max_datagram on a listener that is not udp",
    toml: listener("udp_max_datagram = 4096") + OK_POOL,
    path: "listeners[0].udp_max_datagram",
    message: "udp_max_datagram applies to udp listeners only",
  },
  {
    name: "udp_max_datagram below a minimal datagram",
    toml: listener("udp_max_datagram = 100") + OK_POOL,
    path: "listeners[0].udp_max_datagram",
    message: "512",
  },
  {
    name: "float where an integer is expected",
    toml: listener("max_connections_per_ip = 1.5") + OK_POOL,
    path: "listeners[0].max_connections_per_ip",
    message: "expected an integer, got float",
  },
  {
    name: "string where a bool is expected",
    toml: `[observability]\naccess_log = "yes"\n` + OK_LISTENER + OK_POOL,
    path: "observability.access_log",
    message: "expected true or false, got string",
    at: "2:1",
  },
  {
    name: "a table where an array of tables is expected",
    toml: `[listeners]\nname = "web"\n`,
    path: "listeners",
    message: "expected an array of tables ([[listeners]]), got table",
    at: "1:1",
  },
  {
    name: "a string where a table is expected",
    toml: listener('tls = "cert.pem"') + OK_POOL,
    path: "listeners[0].tls",
    message: "expected a table, got string",
  },
  {
    name: "integers in server_names",
    toml: (c) =>
      tlsListener(
        `{ cert = "${c.cert}", key = "${c.key}", certificates = [{ server_names = [1], cert = "${c.cert}", key = "${c.key}" }] }`,
      ) + OK_POOL,
    path: "listeners[0].tls.certificates[0].server_names",
    message: "expected an array of strings, got array",
  },
  {
    name: 'workers neither "auto" nor an integer',
    toml: `[runtime]\nworkers = "many"\n` + OK_LISTENER + OK_POOL,
    path: "runtime.workers",
    message: 'expected "auto" or an integer, got string',
    at: "2:1",
  },
  // ── numbers, sizes, durations out of range ──
  {
    name: "negative connection limit",
    toml: listener("max_connections = -1") + OK_POOL,
    path: "listeners[0].max_connections",
    message: "must be at least 1, got -1",
  },
  {
    name: "negative size",
    toml: `[[listeners]]\nname = "web"\nbind = "127.0.0.1:0"\nprotocol = "http"\nmax_body_size = "-1MiB"\n`,
    path: "listeners[0].max_body_size",
    message: 'invalid size "-1MiB"',
    at: "5:1",
  },
  {
    name: "size as a bare integer",
    toml: listener("max_body_size = 1048576") + OK_POOL,
    path: "listeners[0].max_body_size",
    message: 'expected a size string such as "64MiB", got integer',
  },
  {
    name: "size below its minimum",
    toml: listener('max_header_size = "100B"') + OK_POOL,
    path: "listeners[0].max_header_size",
    message: 'must be at least 256B, got "100B"',
  },
  {
    name: '"0s" where a minimum applies',
    toml: listener('header_timeout = "0s"') + OK_POOL,
    path: "listeners[0].header_timeout",
    message: 'must be at least 1ms, got "0s"',
  },
  {
    name: "duration without a unit",
    toml: listener("idle_timeout = 10") + OK_POOL,
    path: "listeners[0].idle_timeout",
    message: 'expected a duration string such as "10s", got integer',
  },
  {
    name: "duration with an unknown unit",
    toml: listener('body_timeout = "10 seconds"') + OK_POOL,
    path: "listeners[0].body_timeout",
    message: 'invalid duration "10 seconds"; use a number with ms, s, m or h',
  },
  {
    name: "duration longer than a timer can hold",
    toml: `[runtime]\ndrain_timeout = "1000h"\n` + OK_LISTENER + OK_POOL,
    path: "runtime.drain_timeout",
    message: 'must be at most 2147483647ms, got "1000h"',
    at: "2:1",
  },
  {
    name: "probe interval of 0s",
    toml: OK_LISTENER + pool("api", '[pools.health]\ninterval = "0s"'),
    path: "pools[0].health.interval",
    message: 'must be at least 10ms, got "0s"',
  },
  {
    name: "respond status out of range",
    toml: listener("", "[[listeners.routes]]\nrespond = { status = 99 }"),
    path: "listeners[0].routes[0].respond.status",
    message: "must be at least 200, got 99",
  },
  // ── unknown keys, at every level, with did-you-mean ──
  {
    name: "unknown table at the top level",
    toml: `[runtim]\ndrain_timeout = "1s"\n` + OK_LISTENER + OK_POOL,
    path: "runtim",
    message: "unknown key 'runtim' at the top level; did you mean 'runtime'?",
    at: "1:1",
  },
  {
    name: "unknown top-level key without a close match lists the valid ones",
    toml: `[upstreams]\nx = 1\n` + OK_LISTENER + OK_POOL,
    path: "upstreams",
    message: "valid keys: runtime, observability, admin, control, xdp, passthrough, listeners, pools",
  },
  {
    name: "unknown key in [runtime]",
    toml: `[runtime]\ndrain_timout = "1s"\n` + OK_LISTENER + OK_POOL,
    path: "runtime.drain_timout",
    message: "unknown key 'drain_timout' in runtime; did you mean 'drain_timeout'?",
    at: "2:1",
  },
  {
    name: "unknown key in a listener",
    toml: `[[listeners]]\nname = "web"\nbind = "127.0.0.1:0"\nprotocol = "http"\nmax_conections = 10\n`,
    path: "listeners[0].max_conections",
    message: "unknown key 'max_conections' in listeners[0]; did you mean 'max_connections'?",
    at: "5:1",
  },
  {
    name: "unknown key in the second route of the second listener",
    toml: listener() + `[[listeners]]\nname = "b"\nbind = "127.0.0.1:0"\nprotocol = "http"\n` +
      `  [[listeners.routes]]\n  pool = "api"\n  [[listeners.routes]]\n  pol = "api"\n` + OK_POOL,
    path: "listeners[1].routes[1].pol",
    message: "unknown key 'pol' in listeners[1].routes[1]; did you mean 'pool'?",
    at: "15:3",
  },
  {
    name: "unknown key inside an inline table",
    toml:
      `[[listeners]]\nname = "web"\nbind = "127.0.0.1:0"\nprotocol = "https"\ntls = { cert = "c", key = "k", tls13only = true }\n`,
    path: "listeners[0].tls.tls13only",
    message: "did you mean 'tls13_only'?",
    at: "5:32",
  },
  {
    name: "unknown key in a pool",
    toml: OK_LISTENER + pool("api", 'algoritm = "random"'),
    path: "pools[0].algoritm",
    message: "unknown key 'algoritm' in pools[0]; did you mean 'algorithm'?",
  },
  {
    name: "unknown key in a backend",
    toml: OK_LISTENER + pool("api", "", ['address = "127.0.0.1:9"\nwieght = 2']),
    path: "pools[0].backends[0].wieght",
    message: "did you mean 'weight'?",
  },
  {
    name: "unknown key in [pools.health]",
    toml: OK_LISTENER + pool("api", '[pools.health]\nintervall = "2s"'),
    path: "pools[0].health.intervall",
    message: "did you mean 'interval'?",
  },
  {
    name: "unknown enum value with a suggestion",
    toml: OK_LISTENER + pool("api", 'algorithm = "roundrobin"'),
    path: "pools[0].algorithm",
    message: "invalid value 'roundrobin'; one of: round_robin, weighted_round_robin, random,",
  },
  {
    name: "unknown enum value gets a did-you-mean",
    toml: listener().replace('protocol = "http"', 'protocol = "htps"') + OK_POOL,
    path: "listeners[0].protocol",
    message: "; did you mean 'https'?",
    at: "4:1",
  },
  {
    name: "unknown log level lists the choices",
    toml: `[observability]\nlog_level = "verbose"\n` + OK_LISTENER + OK_POOL,
    path: "observability.log_level",
    message: "one of: debug, info, warn, error",
  },
  {
    name: "a quoted key with a newline is escaped, staying on one line",
    toml: `"bad\\nkey" = 1\n` + OK_LISTENER + OK_POOL,
    path: "bad\nkey",
    message: "unknown key 'bad\nkey'",
  },
  // ── required keys and names ──
  {
    name: "empty file: no listeners",
    toml: "",
    path: "listeners",
    message: "at least one [[listeners]] entry is required",
  },
  {
    name: "listener without a name",
    toml: `[[listeners]]\nbind = "127.0.0.1:0"\nprotocol = "http"\n`,
    path: "listeners[0].name",
    message: "required key is missing",
    at: "1:1",
  },
  {
    name: "a name with spaces",
    toml: listener("", '[[listeners.routes]]\npool = "api"', "my listener") + OK_POOL,
    path: "listeners[0].name",
    message: `invalid value "my listener": letters, digits`,
  },
  {
    name: "duplicate listener names",
    toml: listener() + listener() + OK_POOL,
    path: "listeners[1].name",
    message: "duplicate listener name 'web' (first defined at listeners[0])",
    at: "9:1",
  },
  {
    name: "duplicate pool names",
    toml: OK_LISTENER + pool() + pool(),
    path: "pools[1].name",
    message: "duplicate pool name 'api' (first defined at pools[0])",
  },
  // ── routes ──
  {
    name: "route to an undefined pool",
    toml: listener("", '[[listeners.routes]]\npath_prefix = "/v1/"\npool = "api2"') + pool("api") +
      pool("web"),
    path: "listeners[0].routes[0].pool",
    message: "pool 'api2' is not defined; defined pools: api, web",
    at: "8:1",
  },
  {
    name: "route with both pool and respond",
    toml: listener("", '[[listeners.routes]]\npool = "api"\nrespond = { status = 200 }') + OK_POOL,
    path: "listeners[0].routes[0]",
    message: 'a route needs exactly one of pool = "NAME" or respond = { ... }',
    at: "6:1",
  },
  {
    name: "route with neither pool nor respond",
    toml: listener("", '[[listeners.routes]]\npath_prefix = "/x/"') + OK_POOL,
    path: "listeners[0].routes[0]",
    message: "a route needs exactly one of",
  },
  {
    name: "path_prefix without a leading slash",
    toml: listener("", '[[listeners.routes]]\npath_prefix = "v1/"\npool = "api"') + OK_POOL,
    path: "listeners[0].routes[0].path_prefix",
    message: "must start with '/'",
  },
  {
    name: "invalid route host",
    toml: listener("", '[[listeners.routes]]\nhost = "exa mple.com"\npool = "api"') + OK_POOL,
    path: "listeners[0].routes[0].host",
    message: "invalid host 'exa mple.com'",
  },
  {
    name: "alt_svc_h3 naming a missing listener",
    toml: listener('alt_svc_h3 = "h3"') + OK_POOL,
    path: "listeners[0].alt_svc_h3",
    message: "listener 'h3' is not defined; defined listeners: web",
    at: "5:1",
  },
  {
    name: "alt_svc_h3 naming a listener that is not quic",
    toml: listener('alt_svc_h3 = "other"') + listener("", '[[listeners.routes]]\npool = "api"', "other") +
      OK_POOL,
    path: "listeners[0].alt_svc_h3",
    message: "listener 'other' has protocol 'http'; Alt-Svc h3 must name a quic listener",
  },
  // ── TLS ──
  {
    name: "https without tls",
    toml: listener().replace('protocol = "http"', 'protocol = "https"') + OK_POOL,
    path: "listeners[0].tls",
    message: 'protocol \'https\' needs tls = { cert = "...", key = "..." }',
    at: "1:1",
  },
  {
    name: "http with tls",
    toml: (c) => tlsListener(`{ cert = "${c.cert}", key = "${c.key}" }`, "http") + OK_POOL,
    path: "listeners[0].tls",
    message: "protocol 'http' does not use TLS",
  },
  {
    name: "tls13_only = true is refused with the reason",
    toml: (c) => tlsListener(`{ cert = "${c.cert}", key = "${c.key}", tls13_only = true }`) + OK_POOL,
    path: "listeners[0].tls.tls13_only",
    message:
      "cannot be enforced: Deno's TLS stack (rustls via Deno.listenTls) offers no protocol-version setting",
  },
  {
    name: "unreadable cert (a directory)",
    toml: (c) => tlsListener(`{ cert = "${c.subdir}", key = "${c.key}" }`) + OK_POOL,
    path: "listeners[0].tls.cert",
    message: (c) => `'${c.subdir}' is not a regular file`,
  },
  {
    name: "missing cert file",
    toml: (c) => tlsListener(`{ cert = "${c.missing}", key = "${c.key}" }`) + OK_POOL,
    path: "listeners[0].tls.cert",
    message: (c) => `cannot read '${c.missing}': no such file`,
  },
  {
    name: "cert file that is not PEM",
    toml: (c) => tlsListener(`{ cert = "${c.notPem}", key = "${c.key}" }`) + OK_POOL,
    path: "listeners[0].tls.cert",
    message: "holds no PEM certificate",
  },
  {
    name: "key file mode 644 (group/other readable)",
    toml: (c) => tlsListener(`{ cert = "${c.cert}", key = "${c.openKey}" }`) + OK_POOL,
    path: "listeners[0].tls.key",
    message: (c) => `private key '${c.openKey}' is accessible by group or others (mode 644); chmod 600 it`,
  },
  {
    name: "a certificate file given as the key",
    toml: (c) => tlsListener(`{ cert = "${c.cert}", key = "${c.certAsKey}" }`) + OK_POOL,
    path: "listeners[0].tls.key",
    message: (c) => `'${c.certAsKey}' holds no PEM private key`,
  },
  {
    name: "SNI certificate with an empty server_names",
    toml: (c) =>
      tlsListener(
        `{ cert = "${c.cert}", key = "${c.key}", certificates = [{ server_names = [], cert = "${c.cert}", key = "${c.key}" }] }`,
      ) + OK_POOL,
    path: "listeners[0].tls.certificates[0].server_names",
    message: "must not be empty",
  },
  {
    name: "the same SNI name on two certificates",
    toml: (c) =>
      tlsListener(
        `{ cert = "${c.cert}", key = "${c.key}", certificates = [` +
          `{ server_names = ["a.example"], cert = "${c.cert}", key = "${c.key}" }, ` +
          `{ server_names = ["b.example", "A.example"], cert = "${c.cert}", key = "${c.key}" }] }`,
      ) + OK_POOL,
    path: "listeners[0].tls.certificates[1].server_names",
    message: "'A.example' is already served by listeners[0].tls.certificates[0]",
  },
  {
    name: "SNI certificate with a missing key file",
    toml: (c) =>
      tlsListener(
        `{ cert = "${c.cert}", key = "${c.key}", certificates = [{ server_names = ["a.example"], cert = "${c.cert}", key = "${c.missing}" }] }`,
      ) + OK_POOL,
    path: "listeners[0].tls.certificates[0].key",
    message: "no such file",
  },
  {
    name: "backend CA file missing",
    toml: (c) => OK_LISTENER + pool("api", "", [`address = "127.0.0.1:9"\ntls = { ca = "${c.missing}" }`]),
    path: "pools[0].backends[0].tls.ca",
    message: "no such file",
  },
  // ── QUIC Mode B (listeners.raw_proxy) ──
  {
    name: "raw_proxy on a listener that is not quic",
    toml: (c) => rawListener(c, 'backend = "127.0.0.1:4434"', "", "http"),
    path: "listeners[0].raw_proxy",
    message: "raw_proxy relays QUIC connections; it needs protocol = \"quic\", not 'http'",
  },
  {
    name: "raw_proxy without a backend",
    toml: (c) => rawListener(c, 'alpn = ["h3"]'),
    path: "listeners[0].raw_proxy.backend",
    message: "required key is missing",
  },
  {
    name: "raw_proxy backend on port 0",
    toml: (c) => rawListener(c, 'backend = "127.0.0.1:0"'),
    path: "listeners[0].raw_proxy.backend",
    message: "invalid address '127.0.0.1:0'; expected \"host:port\" with a port 1-65535",
  },
  {
    name: "raw_proxy with an empty ALPN list",
    toml: (c) => rawListener(c, 'backend = "127.0.0.1:4434", alpn = []'),
    path: "listeners[0].raw_proxy.alpn",
    message: "must offer at least one ALPN protocol",
  },
  {
    name: "raw_proxy with an ALPN protocol listed twice",
    toml: (c) => rawListener(c, 'backend = "127.0.0.1:4434", alpn = ["h3", "h3"]'),
    path: "listeners[0].raw_proxy.alpn",
    message: 'ALPN protocol "h3" is listed twice',
  },
  {
    name: "raw_proxy with a wildcard server_name",
    toml: (c) => rawListener(c, 'backend = "127.0.0.1:4434", server_name = "*.example.com"'),
    path: "listeners[0].raw_proxy.server_name",
    message: "invalid server name '*.example.com'",
  },
  {
    name: "raw_proxy CA file missing",
    toml: (c) => rawListener(c, `backend = "127.0.0.1:4434", ca = "${c.missing}"`),
    path: "listeners[0].raw_proxy.ca",
    message: "no such file",
  },
  {
    name: "raw_proxy with routes (they would never be used)",
    toml: (c) => rawListener(c, 'backend = "127.0.0.1:4434"', '[[listeners.routes]]\npool = "api"') + OK_POOL,
    path: "listeners[0].routes",
    message: "routes are not used; remove them",
  },
  {
    name: "raw_proxy stream_reset with an unknown value",
    toml: (c) => rawListener(c, 'backend = "127.0.0.1:4434", stream_reset = "ignore"'),
    path: "listeners[0].raw_proxy.stream_reset",
    message: "invalid value 'ignore'; one of: close, fin",
  },
  {
    name: "alt_svc_h3 naming a raw_proxy listener that does not offer h3",
    toml: (c) =>
      listener('alt_svc_h3 = "q"') + rawListener(c, 'backend = "127.0.0.1:4434", alpn = ["doq"]') + OK_POOL,
    path: "listeners[0].alt_svc_h3",
    message: "listener 'q' relays QUIC with raw_proxy.alpn = [\"doq\"], which does not offer h3",
  },
  // ── binds and the admin listener ──
  {
    name: "bind without a port",
    toml: `[[listeners]]\nname = "web"\nbind = "localhost"\nprotocol = "http"\n`,
    path: "listeners[0].bind",
    message: `invalid address 'localhost'; expected "host:port"`,
    at: "3:1",
  },
  {
    name: "bind with a port past 65535",
    toml: listener().replace("127.0.0.1:0", "127.0.0.1:70000") + OK_POOL,
    path: "listeners[0].bind",
    message: "invalid address '127.0.0.1:70000'",
  },
  {
    name: "unbracketed IPv6 bind",
    toml: listener().replace("127.0.0.1:0", "::1:8080") + OK_POOL,
    path: "listeners[0].bind",
    message: "invalid address '::1:8080'",
  },
  {
    name: "duplicate TCP bind",
    toml: listener().replace("127.0.0.1:0", "127.0.0.1:18080") +
      listener("", '[[listeners.routes]]\npool = "api"', "b").replace("127.0.0.1:0", "127.0.0.1:18080") +
      OK_POOL,
    path: "listeners[1].bind",
    message: "TCP 127.0.0.1:18080 overlaps listener 'web' (127.0.0.1:18080)",
  },
  {
    name: "a wildcard bind overlapping a specific one",
    toml: listener().replace("127.0.0.1:0", "127.0.0.1:18080") +
      listener("", '[[listeners.routes]]\npool = "api"', "b").replace("127.0.0.1:0", ":18080") + OK_POOL,
    path: "listeners[1].bind",
    message: "overlaps listener 'web'",
  },
  {
    name: "a listener on the admin address",
    toml: `[observability]\nadmin_bind = "127.0.0.1:19090"\n` +
      listener().replace("127.0.0.1:0", "127.0.0.1:19090") + OK_POOL,
    path: "listeners[0].bind",
    message: "overlaps the admin listener",
  },
  {
    name: "non-loopback admin_bind without api_token_hash",
    toml: `[observability]\nadmin_bind = "0.0.0.0:9090"\n` + OK_LISTENER + OK_POOL,
    path: "admin.api_token_hash",
    message: "admin_bind 0.0.0.0:9090 is not loopback, so admin.api_token_hash is required",
    at: "2:1", // points at admin_bind: the missing key has no place
  },
  {
    name: "invalid admin_bind",
    toml: `[observability]\nadmin_bind = "9090"\n` + OK_LISTENER + OK_POOL,
    path: "observability.admin_bind",
    message: "invalid address '9090'",
    at: "2:1",
  },
  {
    name: "bad api_token_hash format",
    toml: `[admin]\napi_token_hash = "sha256:ABC"\n` + OK_LISTENER + OK_POOL,
    path: "admin.api_token_hash",
    message: "sha256:<64 lowercase hex digits>",
    at: "2:1",
  },
  // ── pools and backends ──
  {
    name: "invalid hash_key",
    toml: OK_LISTENER + pool("api", 'algorithm = "maglev"\nhash_key = "query:user"'),
    path: "pools[0].hash_key",
    message: "header:NAME | cookie:NAME | client_ip",
  },
  {
    name: "weight out of range",
    toml: OK_LISTENER +
      pool("api", 'algorithm = "weighted_random"', ['address = "127.0.0.1:9"\nweight = 10001']),
    path: "pools[0].backends[0].weight",
    message: "must be at most 10000, got 10001",
  },
  {
    name: "negative weight",
    toml: OK_LISTENER + pool("api", "", ['address = "127.0.0.1:9"\nweight = -1']),
    path: "pools[0].backends[0].weight",
    message: "must be at least 0, got -1",
  },
  {
    name: "all weights 0",
    toml: OK_LISTENER +
      pool("api", 'algorithm = "weighted_round_robin"', [
        'address = "127.0.0.1:9"\nweight = 0',
        'address = "127.0.0.1:10"\nweight = 0',
      ]),
    path: "pools[0].backends",
    message: "every backend has weight 0",
  },
  {
    name: "empty backends array",
    toml: OK_LISTENER + `[[pools]]\nname = "api"\nbackends = []\n`,
    path: "pools[0].backends",
    message: "at least one [[pools.backends]] entry is required",
    at: "10:1",
  },
  {
    name: "pool without backends",
    toml: OK_LISTENER + `[[pools]]\nname = "api"\n`,
    path: "pools[0].backends",
    message: "at least one [[pools.backends]] entry is required",
    at: "8:1",
  },
  {
    name: "backend address with port 0",
    toml: OK_LISTENER + pool("api", "", ['address = "127.0.0.1:0"']),
    path: "pools[0].backends[0].address",
    message: "invalid address '127.0.0.1:0'",
  },
  {
    name: "the same backend twice",
    toml: OK_LISTENER + pool("api", "", ['address = "127.0.0.1:9"', 'address = "127.0.0.1:9"']),
    path: "pools[0].backends[1].address",
    message: "backend h1://127.0.0.1:9 appears twice in pool 'api'",
  },
  {
    name: "health path without a slash",
    toml: OK_LISTENER + pool("api", '[pools.health]\npath = "healthz"'),
    path: "pools[0].health.path",
    message: "must start with '/'",
  },
  {
    name: "health expected_status range backwards",
    toml: OK_LISTENER + pool("api", '[pools.health]\nexpected_status = "200,399-200"'),
    path: "pools[0].health.expected_status",
    message: "'200,399-200' has a status outside 100-599 or a range whose end is below its start",
  },
  {
    name: "health expected_status out of range",
    toml: OK_LISTENER + pool("api", '[pools.health]\nexpected_status = "200-999"'),
    path: "pools[0].health.expected_status",
    message: "has a status outside 100-599",
  },
  {
    name: "outlier max_ejection_time below base_ejection_time",
    toml: OK_LISTENER + pool("api", '[pools.outlier]\nbase_ejection_time = "60s"\nmax_ejection_time = "10s"'),
    path: "pools[0].outlier.max_ejection_time",
    message: "must be at least base_ejection_time",
  },
  // ── not TOML, not a file ──
  {
    name: "invalid TOML syntax (line/col from smol-toml)",
    toml: `[[listeners]]\nname = = "web"\n`,
    path: "",
    message: "TOML syntax: invalid value",
    at: "2:8",
  },
  {
    name: "a table defined twice",
    toml: `[runtime]\n[runtime]\n`,
    path: "",
    message: "TOML syntax: trying to redefine an already defined table or value",
    at: "2:2",
  },
  {
    name: "10 MB of garbage is refused by size before parsing",
    file: async (p) => {
      const junk = new Uint8Array(10 * 1024 * 1024);
      for (let i = 0; i < junk.length; i += 4096) junk.set(crypto.getRandomValues(new Uint8Array(4096)), i);
      await Deno.writeFile(p, junk);
    },
    path: "",
    message: `file is 10485760 bytes; a config may be at most ${MAX_CONFIG_BYTES} bytes`,
  },
  {
    name: "binary (not UTF-8)",
    file: (p) => Deno.writeFile(p, new Uint8Array([0x5b, 0x72, 0xff, 0xfe, 0x00, 0x80, 0x5d])),
    path: "",
    message: "not UTF-8 text",
  },
  {
    name: "a directory instead of a file",
    file: (p) => Deno.mkdir(p),
    path: "",
    message: "is a directory, not a config file",
  },
  {
    name: "a missing file",
    file: () => Promise.resolve(),
    path: "",
    message: "cannot read config: no such file",
  },
];

Deno.test("bad configs: each names its key path, what is wrong and where", async (t) => {
  assert.ok(ROWS.length >= 30, `${ROWS.length} rows`);
  const certs = await makeCerts();
  try {
    for (const row of ROWS) {
      await t.step(row.name, async () => {
        const file = `${certs.dir}/case.toml`;
        await Deno.remove(file, { recursive: true }).catch(() => {});
        if (row.file) await row.file(file);
        else await Deno.writeTextFile(file, typeof row.toml === "function" ? row.toml(certs) : row.toml!);
        const r = await loadFile(file);
        const fragment = typeof row.message === "function" ? row.message(certs) : row.message;
        assert.ok(r.errors.length > 0, `accepted: ${row.name}`);
        const hit = r.errors.find((p) => p.path === row.path && p.message.includes(fragment));
        assert.ok(
          hit,
          `no problem at '${row.path}' containing ${JSON.stringify(fragment)}; got:\n${r.message}`,
        );
        assert.equal(hit.file, file);
        if (row.at) assert.equal(`${hit.line}:${hit.column}`, row.at, r.message);
        // The printed form: exactly one line per problem, each starting with file[:line:col].
        const lines = r.message.split("\n");
        assert.equal(lines.length, r.errors.length);
        for (const [i, line] of lines.entries()) {
          assert.ok(line.startsWith(`${file}:`), line);
          assert.equal(line, formatProblem(r.errors[i]));
          assert.doesNotMatch(line, /\n|^\s+at /);
        }
        if (row.at) assert.ok(r.message.includes(`${file}:${row.at}: `), r.message);
      });
    }
  } finally {
    await Deno.remove(certs.dir, { recursive: true });
  }
});

Deno.test("several problems are all reported, in one go", async () => {
  const r = await loadToml(
    `[runtime]\ndrain_timout = "1s"\n[observability]\nlog_levl = "info"\n` +
      listener("max_conections = 1") + OK_POOL,
  );
  assert.deepEqual(r.errors.map((p) => p.path), [
    "runtime.drain_timout",
    "observability.log_levl",
    "listeners[0].max_conections",
  ]);
  assert.deepEqual(r.errors.map((p) => `${p.line}:${p.column}`), ["2:1", "4:1", "9:1"]);
});

Deno.test("a file of thousands of bad keys prints a bounded message", async () => {
  const keys = Array.from({ length: 5000 }, (_, i) => `junk${i} = ${i}`).join("\n");
  const r = await loadToml(keys + "\n" + listener() + OK_POOL);
  assert.equal(r.errors.length, 5000);
  const lines = r.message.split("\n");
  assert.equal(lines.length, MAX_PRINTED_PROBLEMS + 1);
  assert.match(lines[0], /:1:1: junk0: unknown key 'junk0' at the top level/);
  assert.match(lines.at(-1)!, new RegExp(`: \\.\\.\\. and ${5000 - MAX_PRINTED_PROBLEMS} more problems$`));
});
