/**
 * docs/METRICS.md against a live scrape. A gateway with http, tcp and udp listeners, active
 * health checks and 2 data-plane workers is started under the product's flags; every family
 * its /metrics names (`# TYPE <name> <type>`) must be documented, with that type and, where the
 * scrape has samples, with the labels the samples carry; every family of the "Core families"
 * section must be in the scrape. Families under "Families registered only when a feature is
 * enabled" are for code this scrape does not load (XDP, …): each must be registered somewhere
 * under src/ (a string literal, or a `const P = "expressgateway_…"` prefix and `${P}suffix`)
 * and must not be in the scrape, so the two sections cannot drift either.
 */

import assert from "node:assert/strict";
import { startGateway } from "./helpers/gateway.ts";
import { startNodePeer } from "./helpers/node_peer.ts";
import { startOrigin } from "./helpers/origin.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const FEATURE_HEADING = "## Families registered only when a feature is enabled";

interface DocFamily {
  name: string;
  type: string;
  labels: string[];
  line: number;
}

/** Table rows `| \`name\` | type | labels | …` (any padding: deno fmt aligns tables), by section. */
function parseMetricsDoc(text: string): { core: DocFamily[]; feature: DocFamily[] } {
  const core: DocFamily[] = [], feature: DocFamily[] = [];
  let inFeature = false;
  for (const [i, line] of text.split("\n").entries()) {
    if (line.startsWith("## ")) inFeature = line.trim() === FEATURE_HEADING;
    const m = /^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*(\w+)\s*\|([^|]*)\|/.exec(line);
    if (!m) continue;
    const labelsCell = m[3].trim();
    const labels = labelsCell === "—" ? [] : labelsCell.split(",").map((s) => s.trim());
    (inFeature ? feature : core).push({ name: m[1], type: m[2], labels, line: i + 1 });
  }
  return { core, feature };
}

interface Scraped {
  type: string;
  /** label-name sets seen on samples (sorted, joined by ","), `le` excluded */
  labelSets: Set<string>;
}

function parseScrape(text: string): Map<string, Scraped> {
  const out = new Map<string, Scraped>();
  for (const line of text.split("\n")) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) {
      out.set(t[1], { type: t[2], labelSets: new Set() });
      continue;
    }
    if (line === "" || line.startsWith("#")) continue;
    const s = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? /.exec(line);
    if (!s) continue;
    let fam = out.get(s[1]);
    if (!fam) {
      const base = s[1].replace(/_(bucket|sum|count)$/, "");
      if (out.get(base)?.type === "histogram") fam = out.get(base);
    }
    if (!fam) continue;
    const names = [...(s[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)].map((x) => x[1])
      .filter((n) => n !== "le").sort();
    fam.labelSets.add(names.join(","));
  }
  return out;
}

/** Every .ts file under src/, as text. */
async function sourceFiles(dir = `${ROOT}src`): Promise<Array<{ path: string; text: string }>> {
  const out: Array<{ path: string; text: string }> = [];
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await sourceFiles(p));
    else if (e.isFile && e.name.endsWith(".ts")) out.push({ path: p, text: await Deno.readTextFile(p) });
  }
  return out;
}

/** True when some source file names `name` literally or as `${PREFIX_CONST}suffix`. */
function registeredInSource(name: string, files: Array<{ path: string; text: string }>): boolean {
  for (const f of files) {
    if (f.text.includes(`"${name}"`) || f.text.includes(`\`${name}\``)) return true;
    for (const c of f.text.matchAll(/const (\w+) = "(expressgateway_[a-z0-9_]*)";/g)) {
      const [, ident, prefix] = c;
      if (name.startsWith(prefix) && f.text.includes(`\${${ident}}${name.slice(prefix.length)}\``)) {
        return true;
      }
    }
  }
  return false;
}

/**
 * Every family name a source file registers: the first argument of `.counter(` / `.gauge(` /
 * `.histogram(`, a literal (`expressgateway_…`, or one of the standard `process_…` families) or
 * `${P}suffix` with the file's own `const P = "expressgateway_…"`.
 * A name built any other way is reported, so this list cannot silently miss one.
 */
function namesRegisteredInSource(files: Array<{ path: string; text: string }>): {
  names: Map<string, string>;
  unresolved: string[];
} {
  const names = new Map<string, string>();
  const unresolved: string[] = [];
  for (const f of files) {
    const prefixes = new Map(
      [...f.text.matchAll(/const (\w+) = "(expressgateway_[a-z0-9_]*)";/g)].map((m) => [m[1], m[2]]),
    );
    for (const m of f.text.matchAll(/\.(?:counter|gauge|histogram)\(\s*([`"])([^`"]*)\1/g)) {
      let name = m[2];
      const t = /^\$\{(\w+)\}([a-z0-9_]+)$/.exec(name);
      if (t && prefixes.has(t[1])) name = prefixes.get(t[1])! + t[2];
      // process_*: the standard families every Prometheus client exports (process_metrics.ts).
      if (/^(expressgateway|process)_[a-z0-9_]+$/.test(name)) names.set(name, f.path);
      else unresolved.push(`${f.path}: ${m[0]}`);
    }
  }
  return { names, unresolved };
}

Deno.test("every family registered under src/ is documented in docs/METRICS.md", async () => {
  const files = (await sourceFiles()).filter((f) => !f.path.endsWith("/observability/metrics.ts"));
  const { names, unresolved } = namesRegisteredInSource(files);
  assert.deepEqual(unresolved, [], "registrations whose name this test cannot read");
  assert.ok(names.size >= 50, `only ${names.size} registrations found`);
  const doc = parseMetricsDoc(await Deno.readTextFile(`${ROOT}docs/METRICS.md`));
  const documented = new Set([...doc.core, ...doc.feature].map((f) => f.name));
  const missing = [...names].filter(([n]) => !documented.has(n)).map(([n, p]) => `${n} (${p})`);
  assert.deepEqual(missing, [], `registered but not documented:\n${missing.join("\n")}`);
});

Deno.test("parseMetricsDoc splits the sections and reads the label column", () => {
  const doc = [
    "## Core families",
    "| Family | Type | Labels |",
    "| `a_total` | counter | x, y | 2 | … |",
    "| `b`       | gauge   | —    | 1 | … |",
    FEATURE_HEADING,
    "### XDP",
    "| `c_total` | counter | direction | 2 | … |",
  ].join("\n");
  const { core, feature } = parseMetricsDoc(doc);
  assert.deepEqual(core.map((f) => [f.name, f.type, f.labels]), [["a_total", "counter", ["x", "y"]], [
    "b",
    "gauge",
    [],
  ]]);
  assert.deepEqual(feature.map((f) => f.name), ["c_total"]);
});

Deno.test("docs/METRICS.md documents exactly the families a gateway exports, with their types and labels", async () => {
  const origin = await startOrigin("metrics-origin");
  const udp = await startNodePeer("l4_peers.mjs", ["udp-echo", "u1"]);
  const gw = await startGateway(`
[runtime]
workers = 2

[observability]
admin_bind = "127.0.0.1:0"
access_log = false

[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  path_prefix = "/direct"
  respond = { status = 200, body = "direct" }
  [[listeners.routes]]
  pool = "app"

[[listeners]]
name = "raw"
bind = "127.0.0.1:0"
protocol = "tcp"
  [[listeners.routes]]
  pool = "raw"

[[listeners]]
name = "dgram"
bind = "127.0.0.1:0"
protocol = "udp"
  [[listeners.routes]]
  pool = "dgram"

[[pools]]
name = "app"
  [pools.health]
  path = "/"
  interval = "100ms"
  [pools.outlier]
  consecutive_5xx = 3
  [[pools.backends]]
  address = "${origin.address}"

[[pools]]
name = "raw"
  [pools.health]
  kind = "tcp"
  interval = "100ms"
  [[pools.backends]]
  address = "${origin.address}"

[[pools]]
name = "dgram"
  [[pools.backends]]
  address = "127.0.0.1:${udp.port}"
`);
  try {
    // A little traffic on each listener, so most families have samples whose labels can be checked.
    for (const path of ["/direct", "/x", "/status/503"]) {
      const res = await fetch(gw.url("web", path));
      await res.body?.cancel();
    }
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port: gw.ports.raw });
    await tcp.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    const buf = new Uint8Array(4096);
    while ((await tcp.read(buf)) !== null) { /* until the origin closes */ }
    tcp.close();
    const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      await sock.send(new TextEncoder().encode("x"), {
        transport: "udp",
        hostname: "127.0.0.1",
        port: gw.ports.dgram,
      });
      const timer = setTimeout(() => sock.close(), 3000);
      await sock.receive().catch(() => {});
      clearTimeout(timer);
    } finally {
      try {
        sock.close();
      } catch { /* closed by the timer */ }
    }
    // Health probes run every 100 ms; wait (bounded) until one has been counted.
    const deadline = Date.now() + 5000;
    let text = "";
    for (;;) {
      text = await (await fetch(gw.admin("/metrics"))).text();
      if (/^expressgateway_health_probes_total\{/m.test(text) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }

    const scraped = parseScrape(text);
    const doc = parseMetricsDoc(await Deno.readTextFile(`${ROOT}docs/METRICS.md`));
    const documented = new Map([...doc.core, ...doc.feature].map((f) => [f.name, f]));
    assert.ok(scraped.size >= 35, `only ${scraped.size} families scraped`);
    assert.ok(doc.core.length >= 35, `only ${doc.core.length} core families documented`);

    const problems: string[] = [];
    const dup = [...doc.core, ...doc.feature].map((f) => f.name).filter((n, i, a) => a.indexOf(n) !== i);
    for (const n of dup) problems.push(`${n} is documented twice`);
    for (const [name, s] of scraped) {
      const d = documented.get(name);
      if (!d) {
        problems.push(
          `${name} (${s.type}) is exported but not in docs/METRICS.md: add a row to "Core families"`,
        );
        continue;
      }
      if (doc.feature.includes(d)) {
        problems.push(`${name} is in a default scrape: move its row (line ${d.line}) to "Core families"`);
      }
      if (d.type !== s.type) {
        problems.push(`${name}: documented as ${d.type} (line ${d.line}), exported as ${s.type}`);
      }
      for (const set of s.labelSets) {
        if (set !== [...d.labels].sort().join(",")) {
          problems.push(
            `${name}: samples carry labels {${set}}, documented {${d.labels.join(", ")}} (line ${d.line})`,
          );
        }
      }
    }
    for (const d of doc.core) {
      if (!scraped.has(d.name)) {
        problems.push(
          `${d.name} (line ${d.line}) is documented as a core family but not exported: remove it, ` +
            `or move it under "${FEATURE_HEADING.slice(3)}" if only a feature registers it`,
        );
      }
    }
    const files = await sourceFiles();
    for (const d of doc.feature) {
      if (!registeredInSource(d.name, files)) {
        problems.push(`${d.name} (line ${d.line}) is documented but registered nowhere under src/`);
      }
    }
    assert.deepEqual(problems, [], problems.join("\n"));
    // The check would see a difference: the scrape really has labelled samples to compare.
    const labelled = [...scraped.values()].filter((s) => [...s.labelSets].some((l) => l !== "")).length;
    assert.ok(labelled >= 15, `only ${labelled} families had labelled samples`);
  } finally {
    await gw.stop();
    await origin.stop();
    await udp.stop();
  }
});
