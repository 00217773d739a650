/** Log line rendering: JSON lines parse back; text lines are logfmt pairs that split back. */

import assert from "node:assert/strict";
import { Logger } from "../../../src/observability/log.ts";

/** A logfmt reader: key=value, value bare or a JSON string. */
function parseLogfmt(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s]*)/gy;
  let i = 0;
  while (i < line.length) {
    while (line[i] === " ") i++;
    if (i >= line.length) break;
    re.lastIndex = i;
    const m = re.exec(line);
    if (!m) throw new Error(`not logfmt at ${i}: ${line.slice(i, i + 40)}`);
    out[m[1]] = m[2].startsWith('"') ? JSON.parse(m[2]) : m[2];
    i = re.lastIndex;
  }
  return out;
}

const FIELDS = {
  plain: "abc",
  spaced: "a b",
  quoted: 'say "hi"',
  eq: "k=v",
  nl: "line1\nline2",
  backslash: "c:\\path",
  empty: "",
  num: 42,
  obj: { web: 8080 },
  err: new Error("boom"),
  skipped: undefined,
};

Deno.test("JSON lines carry ts, level, msg, context and fields", () => {
  const log = new Logger("info", "json").child({ component: "test" });
  const line = log.render("warn", "something happened", FIELDS);
  assert.ok(line.endsWith("\n"));
  assert.equal(line.trimEnd().includes("\n"), false);
  const j = JSON.parse(line);
  assert.equal(j.level, "warn");
  assert.equal(j.msg, "something happened");
  assert.equal(j.component, "test");
  assert.equal(j.nl, "line1\nline2");
  assert.deepEqual(j.obj, { web: 8080 });
  assert.equal(j.err, "boom");
  assert.ok(!Number.isNaN(Date.parse(j.ts)));
  // A cyclic object must not make logging throw.
  const cyc: Record<string, unknown> = {};
  cyc.self = cyc;
  assert.equal(JSON.parse(log.render("info", "cyclic", { cyc })).msg, "cyclic");
});

Deno.test("text lines are key=value pairs that split back into the same values", () => {
  const log = new Logger("info", "text");
  const line = log.render("info", "gateway ready", FIELDS);
  assert.equal(line.trimEnd().includes("\n"), false, "one line per record");
  const kv = parseLogfmt(line.trimEnd());
  assert.equal(kv.level, "info");
  assert.equal(kv.msg, "gateway ready");
  assert.equal(kv.plain, "abc");
  assert.equal(kv.spaced, "a b");
  assert.equal(kv.quoted, 'say "hi"');
  assert.equal(kv.eq, "k=v");
  assert.equal(kv.nl, "line1\nline2");
  assert.equal(kv.backslash, "c:\\path");
  assert.equal(kv.empty, "");
  assert.equal(kv.num, "42");
  assert.deepEqual(JSON.parse(kv.obj), { web: 8080 });
  assert.equal(kv.err, '"boom"');
  assert.equal("skipped" in kv, false);
  assert.match(line, /^ts=\S+ level=info msg="gateway ready" plain=abc /);
});

Deno.test("levels: configure changes the parent and its children; enabled follows", () => {
  const log = new Logger("info", "json");
  const child = log.child({ c: 1 });
  assert.equal(child.enabled("info"), true);
  assert.equal(child.enabled("debug"), false);
  log.configure("warn", "text");
  // LB_LOG_LEVEL / LB_LOG_FORMAT (if the test runner has them) win over configure.
  const envLevel = Deno.env.get("LB_LOG_LEVEL");
  if (!envLevel) {
    assert.equal(child.enabled("info"), false);
    assert.equal(child.enabled("warn"), true);
  }
  if (!Deno.env.get("LB_LOG_FORMAT")) assert.match(child.render("warn", "x"), /^ts=/);
});
