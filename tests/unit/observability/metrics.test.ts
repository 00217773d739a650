/**
 * The metrics registry and its Prometheus text exposition: values, labels and their escaping,
 * cumulative histogram buckets, merging of several sources, and promtool's verdict on the
 * output (the real Prometheus parser and linter, not our reading of the format).
 */

import assert from "node:assert/strict";
import {
  type CollectedFamily,
  exposition,
  LATENCY_BUCKETS,
  mergeCollected,
  Registry,
} from "../../../src/observability/metrics.ts";
import { DataPlaneMetrics } from "../../../src/observability/gateway_metrics.ts";
import { ControlMetrics } from "../../../src/observability/gateway_metrics.ts";
import { run } from "../../helpers/run.ts";

function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    if (line.slice(0, sp) === series) return Number(line.slice(sp + 1));
  }
  return undefined;
}

async function promtool(text: string): Promise<{ code: number; out: string }> {
  const r = await run("promtool", ["check", "metrics"], {
    stdin: new TextEncoder().encode(text),
    timeoutMs: 20_000,
  });
  return { code: r.code, out: (r.stdout + r.stderr).trim() };
}

Deno.test("counters, gauges and labels", () => {
  const r = new Registry();
  const c = r.counter("t_requests_total", "Requests.", ["route", "status"]);
  c.with("a", "2xx").inc();
  c.with("a", "2xx").inc(2);
  c.with("b", "5xx").inc();
  c.with("b", "5xx").inc(-5); // counters never go down
  c.with("b", "5xx").inc(NaN);
  const g = r.gauge("t_open", "Open.", ["listener"]);
  g.with("web").set(7);
  g.with("web").dec(2);
  g.with("web").inc();
  const text = exposition(r.collect());
  assert.equal(sample(text, 't_requests_total{route="a",status="2xx"}'), 3);
  assert.equal(sample(text, 't_requests_total{route="b",status="5xx"}'), 1);
  assert.equal(sample(text, 't_open{listener="web"}'), 6);
  assert.match(text, /^# HELP t_requests_total Requests\.\n# TYPE t_requests_total counter\n/);
  assert.match(text, /# TYPE t_open gauge\n/);
  // Same child object for the same label values (hot paths cache it).
  assert.equal(c.with("a", "2xx"), c.with("a", "2xx"));
  assert.throws(() => c.with("only-one"), /expected 2 label values, got 1/);
});

Deno.test("unlabelled families expose 0 before the first increment", () => {
  const r = new Registry();
  r.counter("t_reloads_total", "Reloads.");
  r.gauge("t_generation", "Generation.");
  r.histogram("t_wait_seconds", "Wait.", [], [1]);
  const text = exposition(r.collect());
  assert.equal(sample(text, "t_reloads_total"), 0);
  assert.equal(sample(text, "t_generation"), 0);
  assert.equal(sample(text, 't_wait_seconds_bucket{le="+Inf"}'), 0);
  assert.equal(sample(text, "t_wait_seconds_count"), 0);
});

Deno.test("label values escape backslash, double quote and newline; HELP escapes backslash and newline", () => {
  const r = new Registry();
  const c = r.counter("t_esc_total", 'Help with \\ backslash,\nnewline and "quotes".', ["v"]);
  c.with('a"b').inc();
  c.with("c\\d").inc();
  c.with("e\nf").inc();
  c.with('all\\"\n').inc();
  const text = exposition(r.collect());
  const lines = text.split("\n");
  assert.equal(lines[0], '# HELP t_esc_total Help with \\\\ backslash,\\nnewline and "quotes".');
  assert.ok(lines.includes('t_esc_total{v="a\\"b"} 1'), text);
  assert.ok(lines.includes('t_esc_total{v="c\\\\d"} 1'), text);
  assert.ok(lines.includes('t_esc_total{v="e\\nf"} 1'), text);
  assert.ok(lines.includes('t_esc_total{v="all\\\\\\"\\n"} 1'), text);
  // Every sample stays on one line: 2 comment lines + 4 samples + trailing "".
  assert.equal(lines.length, 7);
});

Deno.test("histogram buckets are cumulative with le semantics, +Inf, _sum and _count", () => {
  const r = new Registry();
  const h = r.histogram("t_latency_seconds", "Latency.", ["listener"], [0.1, 0.5, 1]);
  const web = h.with("web");
  for (const v of [0.05, 0.1, 0.1000001, 0.5, 0.7, 1, 3, 100]) web.observe(v);
  web.observe(NaN); // ignored
  const text = exposition(r.collect());
  const b = (le: string) => sample(text, `t_latency_seconds_bucket{listener="web",le="${le}"}`);
  assert.equal(b("0.1"), 2); // 0.05, 0.1 (le is inclusive)
  assert.equal(b("0.5"), 4); // + 0.1000001, 0.5
  assert.equal(b("1"), 6); // + 0.7, 1
  assert.equal(b("+Inf"), 8);
  assert.equal(sample(text, 't_latency_seconds_count{listener="web"}'), 8);
  const sum = sample(text, 't_latency_seconds_sum{listener="web"}')!;
  assert.ok(Math.abs(sum - 105.4500001) < 1e-9, String(sum));
  // Ordering within a series: buckets ascending, then +Inf, _sum, _count.
  const names = text.split("\n").filter((l) => l.startsWith("t_latency")).map((l) => l.replace(/ .*/, ""));
  assert.deepEqual(names, [
    't_latency_seconds_bucket{listener="web",le="0.1"}',
    't_latency_seconds_bucket{listener="web",le="0.5"}',
    't_latency_seconds_bucket{listener="web",le="1"}',
    't_latency_seconds_bucket{listener="web",le="+Inf"}',
    't_latency_seconds_sum{listener="web"}',
    't_latency_seconds_count{listener="web"}',
  ]);
  // Default buckets: every boundary value lands in its own bucket.
  const d = r.histogram("t_default_seconds", "Default.");
  for (const v of LATENCY_BUCKETS) d.observe(v);
  const t2 = exposition(r.collect());
  LATENCY_BUCKETS.forEach((le, i) => assert.equal(sample(t2, `t_default_seconds_bucket{le="${le}"}`), i + 1));
});

Deno.test("registration misuse throws at registration; re-registering the same family returns it", () => {
  const r = new Registry();
  const a = r.counter("t_x_total", "X.", ["a"]);
  assert.equal(r.counter("t_x_total", "X.", ["a"]), a);
  assert.throws(() => r.gauge("t_x_total", "X.", ["a"]), /already registered/);
  assert.throws(() => r.counter("bad-name", "X."), /invalid metric name/);
  assert.throws(() => r.counter("t_y_total", "Y.", ["bad-label"]), /invalid label name/);
  assert.throws(() => r.counter("t_z_total", "Z.", ["__reserved"]), /invalid label name/);
  assert.throws(() => r.histogram("t_h", "H.", ["le"]), /reserved/);
  assert.throws(() => r.histogram("t_h2", "H.", [], [1, 0.5]), /strictly increasing/);
  assert.throws(() => r.histogram("t_h3", "H.", [], [1, NaN]), /strictly increasing/);
});

Deno.test("remove and removeMatching drop series", () => {
  const r = new Registry();
  const c = r.counter("t_rm_total", "Rm.", ["pool", "backend", "kind"]);
  c.with("p", "a", "connect").inc();
  c.with("p", "a", "timeout").inc();
  c.with("p", "b", "connect").inc();
  c.removeMatching({ pool: "p", backend: "a" });
  const text = exposition(r.collect());
  assert.equal(sample(text, 't_rm_total{pool="p",backend="a",kind="connect"}'), undefined);
  assert.equal(sample(text, 't_rm_total{pool="p",backend="a",kind="timeout"}'), undefined);
  assert.equal(sample(text, 't_rm_total{pool="p",backend="b",kind="connect"}'), 1);
  c.remove("p", "b", "connect");
  assert.equal(sample(exposition(r.collect()), 't_rm_total{pool="p",backend="b",kind="connect"}'), undefined);
});

Deno.test("a series removed right after its lookup comes back exported when used again (no stale last-hit)", () => {
  const r = new Registry();
  const c = r.counter("t_again_total", "Again.", ["pool", "backend"]);
  c.with("p", "a").inc(); // now the family's remembered last lookup
  c.remove("p", "a");
  c.with("p", "a").inc();
  assert.equal(sample(exposition(r.collect()), 't_again_total{pool="p",backend="a"}'), 1);
  c.with("p", "a").inc();
  c.removeMatching({ backend: "a" });
  c.with("p", "a").inc(2);
  assert.equal(sample(exposition(r.collect()), 't_again_total{pool="p",backend="a"}'), 2);
});
Deno.test("a throwing collect hook does not break collection", () => {
  const r = new Registry();
  r.gauge("t_g", "G.").set(4);
  r.onCollect(() => {
    throw new Error("hook bug");
  });
  const text = exposition(r.collect());
  assert.equal(sample(text, "t_g"), 4);
  assert.match(String(r.hookError), /hook bug/);
});

Deno.test("mergeCollected sums counters, gauges and histogram buckets from two sources", () => {
  const mk = (n: number) => {
    const r = new Registry();
    r.counter("t_req_total", "Req.", ["l"]).with("web").inc(n);
    r.counter("t_only_" + n + "_total", "Only.").inc(n);
    r.gauge("t_conns", "Conns.", ["l"]).with("web").set(n * 10);
    const h = r.histogram("t_lat_seconds", "Lat.", ["l"], [1, 2]);
    h.with("web").observe(n); // 1 → le=1, 2 → le=2
    h.with("api").observe(5);
    return r.collect();
  };
  const merged = mergeCollected([mk(1), mk(2)]);
  const text = exposition(merged);
  assert.equal(sample(text, 't_req_total{l="web"}'), 3);
  assert.equal(sample(text, "t_only_1_total"), 1);
  assert.equal(sample(text, "t_only_2_total"), 2);
  assert.equal(sample(text, 't_conns{l="web"}'), 30);
  assert.equal(sample(text, 't_lat_seconds_bucket{l="web",le="1"}'), 1);
  assert.equal(sample(text, 't_lat_seconds_bucket{l="web",le="2"}'), 2);
  assert.equal(sample(text, 't_lat_seconds_bucket{l="web",le="+Inf"}'), 2);
  assert.equal(sample(text, 't_lat_seconds_sum{l="web"}'), 3);
  assert.equal(sample(text, 't_lat_seconds_count{l="api"}'), 2);
  // One HELP/TYPE per family, however many sources.
  assert.equal(text.split("\n").filter((l) => l === "# TYPE t_req_total counter").length, 1);

  // Sources are not mutated by merging.
  const a = mk(1);
  const before = JSON.stringify(a);
  mergeCollected([a, mk(2)]);
  assert.equal(JSON.stringify(a), before);

  // A source disagreeing on a family's type is skipped for that family, not mixed in.
  const clash: CollectedFamily[] = [{ name: "t_req_total", help: "x", type: "gauge", series: [] }];
  const m2 = exposition(mergeCollected([mk(1), clash]));
  assert.match(m2, /# TYPE t_req_total counter/);
  assert.equal(sample(m2, 't_req_total{l="web"}'), 1);
});

Deno.test("promtool check metrics: every family type, awkward labels and the gateway's own families pass clean", async () => {
  const r = new Registry();
  const c = r.counter("t_events_total", "Events, with a \\ and a\nnewline in the help.", ["kind"]);
  c.with('quote"d').inc();
  c.with("back\\slash").inc(2);
  c.with("new\nline").inc(3);
  c.with("").inc(); // empty label value is valid
  r.counter("t_unlabelled_total", "No labels.");
  const g = r.gauge("t_temperature_celsius", "A gauge.", ["room"]);
  g.with("a").set(-1.5);
  g.with("b").set(1e-7);
  g.with("c").set(Infinity);
  r.gauge("t_nan", "A NaN gauge.").set(NaN);
  const h = r.histogram("t_request_duration_seconds", "A histogram.", ["route"]);
  for (let i = 0; i < 50; i++) h.with("r").observe(i / 10);
  r.histogram("t_empty_seconds", "Histogram with no observations.", ["route"]);
  // The gateway's real families, as registered in production.
  const dp = new DataPlaneMetrics();
  dp.requests.with("web", "web#0", "app", "2xx").inc();
  dp.requestSeconds.with("web").observe(0.003);
  dp.upstreamSeconds.with("app", "127.0.0.1:1").observe(0.002);
  dp.backendPicks.with("app", "127.0.0.1:1").inc();
  const ctl = new ControlMetrics(r);
  ctl.reloads.inc();
  ctl.info.with("0.0.0-test").set(1);
  const text = exposition(mergeCollected([r.collect(), dp.registry.collect()]));
  const res = await promtool(text);
  assert.equal(res.code, 0, `promtool failed:\n${res.out}\n---\n${text}`);
  assert.equal(res.out, "", `promtool complained:\n${res.out}`);

  // And promtool does catch what we guard against (so the check above can fail).
  const bad = await promtool("# HELP x A counter.\n# TYPE x counter\nx 1\n");
  assert.notEqual(bad.code, 0);
  assert.match(bad.out, /_total/);
});
