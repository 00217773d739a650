/** Good configs: defaults, units, the frozen snapshot, warnings that never fail a load, schema self-consistency. */
import assert from "node:assert/strict";
import { loadConfigText } from "../../../src/config/load.ts";
import { type FieldSpec, SCHEMA, schemaKeyPaths, type TableSpec } from "../../../src/config/schema.ts";
import { parseDuration, parseSize } from "../../../src/config/units.ts";
import { listener, loadToml, makeCerts, pool } from "./helpers.ts";

Deno.test("a minimal config gets every default, in milliseconds and bytes", async () => {
  const r = await loadToml(listener() + pool());
  assert.deepEqual(r.errors, []);
  const c = r.snapshot!.config;
  assert.equal(c.runtime.drain_timeout, 10_000);
  assert.equal(c.runtime.xdp_enabled, false);
  assert.equal(c.runtime.max_in_flight, 10_000);
  assert.equal(c.runtime.workers, "auto");
  assert.equal(c.observability.admin_bind, "127.0.0.1:9090");
  assert.equal(c.observability.log_format, "json");
  const l = c.listeners[0];
  assert.equal(l.max_connections, 10_000);
  assert.equal(l.max_body_size, 64 * 1024 * 1024);
  assert.equal(l.max_header_size, 32 * 1024);
  assert.equal(l.header_timeout, 10_000);
  assert.equal(l.tls, undefined);
  assert.deepEqual(l.routes, [{ pool: "api" }]);
  const p = c.pools[0];
  assert.equal(p.algorithm, "round_robin");
  assert.equal(p.connect_timeout, 5000);
  assert.equal(p.health, undefined);
  assert.deepEqual(p.backends, [{ address: "127.0.0.1:9", protocol: "h1", weight: 1 }]);
});

Deno.test("a raw_proxy quic listener (QUIC Mode B) gets its defaults and needs no routes", async () => {
  const certs = await makeCerts();
  try {
    const r = await loadToml(
      `[[listeners]]\nname = "q"\nbind = "127.0.0.1:0"\nprotocol = "quic"\n` +
        `tls = { cert = "${certs.cert}", key = "${certs.key}" }\n` +
        `[listeners.raw_proxy]\nbackend = "[::1]:4434"\nca = "${certs.cert}"\n`,
    );
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.warnings, [], "no 'no routes' warning for a relay");
    const l = r.snapshot!.config.listeners[0];
    assert.deepEqual(l.raw_proxy, {
      backend: "[::1]:4434",
      alpn: ["h3"],
      ca: certs.cert,
      connect_timeout: 5000,
      idle_timeout: 60_000,
      stream_reset: "close",
    });
    assert.deepEqual(l.routes, []);
    // Without raw_proxy the same quic listener serves HTTP/3, and no routes is worth a warning.
    const h3 = await loadToml(
      `[[listeners]]\nname = "q"\nbind = "127.0.0.1:0"\nprotocol = "quic"\n` +
        `tls = { cert = "${certs.cert}", key = "${certs.key}" }\n`,
    );
    assert.equal(h3.snapshot!.config.listeners[0].raw_proxy, undefined);
    assert.match(h3.warnings.map((w) => w.message).join("\n"), /no routes/);
  } finally {
    await Deno.remove(certs.dir, { recursive: true });
  }
});

Deno.test("the snapshot is frozen, hashed and numbered", async () => {
  const text = listener("", '[[listeners.routes]]\nrespond = { body = "hi" }');
  const a = await loadConfigText(text, "a.toml");
  const b = await loadConfigText(text, "b.toml");
  assert.equal(a.source, "a.toml");
  assert.match(a.digest, /^[0-9a-f]{64}$/);
  assert.equal(a.digest, b.digest);
  assert.ok(b.generation > a.generation);
  assert.deepEqual(a.config.listeners[0].routes[0].respond, {
    status: 200,
    body: "hi",
    content_type: "text/plain; charset=utf-8",
  });
  assert.ok(Object.isFrozen(a.config.listeners[0].routes[0].respond));
  assert.throws(() => {
    (a.config.runtime as { drain_timeout: number }).drain_timeout = 1;
  }, TypeError);
});

Deno.test("accepted edge cases: port 0 twice, IPv6 binds, zero drain, 0B body, multi-line inline tables", async () => {
  const r = await loadToml(
    listener() +
      listener("", '[[listeners.routes]]\npool = "api"', "b") +
      listener('max_body_size = "0B"', '[[listeners.routes]]\npool = "api"', "v6").replace(
        "127.0.0.1:0",
        "[::1]:0",
      ) +
      `[runtime]\ndrain_timeout = "0s"\n` +
      `[[pools]]\nname = "api"\nbackends = [\n  { address = "[::1]:9",\n    weight = 2 },\n  { address = "localhost:10" },\n]\n`,
  );
  assert.deepEqual(r.errors, [], r.message);
  assert.equal(r.snapshot!.config.runtime.drain_timeout, 0);
  assert.equal(r.snapshot!.config.listeners[2].max_body_size, 0);
  assert.equal(r.snapshot!.config.pools[0].backends[0].weight, 2);
});

Deno.test("warnings never fail a load, and say what is ignored", async () => {
  const r = await loadToml(
    listener() + listener("", "", "bare") +
      pool("api", "", ['address = "127.0.0.1:9"\nweight = 3', 'address = "127.0.0.1:10"']) +
      pool("hashed", 'algorithm = "ring_hash"') +
      pool("keyed", 'algorithm = "least_request"\nhash_key = "header:x-user"'),
  );
  assert.deepEqual(r.errors, []);
  assert.ok(r.snapshot);
  const got = r.warnings.map((w) => `${w.path}: ${w.message}`);
  const expect = [
    "listeners[1].routes: no routes: every request will get 404",
    "pools[0].backends: algorithm 'round_robin' ignores weights; use weighted_round_robin",
    "pools[1]: pool 'hashed' is not used by any route",
    "pools[1].hash_key: algorithm 'ring_hash' has no hash_key; hashing on client_ip",
    "pools[2]: pool 'keyed' is not used by any route",
    "pools[2].hash_key: algorithm 'least_request' does not hash; hash_key is ignored",
  ];
  assert.deepEqual(got.sort(), expect.sort());
  for (const w of r.warnings) assert.equal(w.severity, "warning");
  // Warnings point into the text too.
  assert.ok(r.warnings.every((w) => typeof w.line === "number"), JSON.stringify(r.warnings));
});

Deno.test("a route after one that matches everything it matches is unreachable (warning)", async () => {
  const routes = [
    '[[listeners.routes]]\nhost = "*.example.com"\npool = "api"',
    '[[listeners.routes]]\nhost = "API.example.com"\npath_prefix = "/v1/"\npool = "api"', // shadowed by 0
    '[[listeners.routes]]\nhost = "example.com"\npool = "api"', // not: "*." needs a label
    '[[listeners.routes]]\npath_prefix = "/v1/"\npool = "api"', // not: any host
    '[[listeners.routes]]\npath_prefix = "/v1/users"\npool = "api"', // shadowed by 3
    '[[listeners.routes]]\npool = "api"',
    '[[listeners.routes]]\npath_prefix = "/"\nrespond = { status = 404 }', // shadowed by 5
  ].join("\n");
  const r = await loadToml(listener("", routes) + pool());
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.warnings.map((w) => `${w.path}: ${w.message}`), [
    "listeners[0].routes[1]: unreachable: listeners[0].routes[0] matches every request this route matches",
    "listeners[0].routes[4]: unreachable: listeners[0].routes[3] matches every request this route matches",
    "listeners[0].routes[6]: unreachable: listeners[0].routes[5] matches every request this route matches",
  ]);
});

Deno.test("warnings are not reported alongside errors as errors", async () => {
  const r = await loadToml(listener("max_connections = 0", "") + pool());
  assert.deepEqual(r.errors.map((e) => e.path), ["listeners[0].max_connections"]);
  assert.ok(r.errors.every((e) => e.severity !== "warning"));
});

/** Walks the schema: every default must itself be valid for its field. */
function checkDefaults(spec: TableSpec, prefix: string, bad: string[]) {
  for (const [key, f] of Object.entries(spec) as Array<[string, FieldSpec]>) {
    const path = prefix ? `${prefix}.${key}` : key;
    assert.ok(f.doc.trim().length > 0, `${path} has no doc`);
    if (f.type === "table" || f.type === "tables") checkDefaults(f.fields, path, bad);
    if (!("default" in f) || f.default === undefined) continue;
    if (f.type === "duration" && parseDuration(f.default) === undefined) bad.push(path);
    if (f.type === "size" && parseSize(f.default) === undefined) bad.push(path);
    if (f.type === "enum" && !f.values.includes(f.default)) bad.push(path);
    if (f.type === "string" && f.pattern && !f.pattern.test(f.default)) bad.push(path);
    if (f.type === "int" && ((f.min ?? -Infinity) > f.default || (f.max ?? Infinity) < f.default)) {
      bad.push(path);
    }
    if ("required" in f && f.required) bad.push(`${path} (required with a default)`);
  }
}

Deno.test("schema: defaults are valid, every field documented, key paths unique", () => {
  const bad: string[] = [];
  checkDefaults(SCHEMA, "", bad);
  assert.deepEqual(bad, []);
  const paths = schemaKeyPaths();
  assert.equal(new Set(paths).size, paths.length);
  assert.ok(paths.includes("listeners.routes.pool"));
  assert.ok(paths.includes("listeners.tls.certificates.server_names"));
});
