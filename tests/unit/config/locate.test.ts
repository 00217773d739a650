/** KeyLocator: key paths → line:column for tables, arrays of tables, dotted keys, inline tables, arrays. */
import assert from "node:assert/strict";
import { parse } from "smol-toml";
import { KeyLocator } from "../../../src/config/locate.ts";

const SOURCE = [
  /*  1 */ "# comment with [brackets] and key = value",
  /*  2 */ "[runtime]",
  /*  3 */ 'drain_timeout = "10s"  # trailing',
  /*  4 */ "",
  /*  5 */ "[[listeners]]",
  /*  6 */ 'name = "a"',
  /*  7 */ 'tls = { cert = "c.pem", key = "k.pem", certificates = [{ server_names = ["x"], cert = "y" }] }',
  /*  8 */ "  [[listeners.routes]]",
  /*  9 */ '  pool = "p"',
  /* 10 */ "  [[listeners.routes]]",
  /* 11 */ '  respond = { status = 200, body = "a = b, c } ]" }',
  /* 12 */ "[[listeners]]",
  /* 13 */ 'name = "b"',
  /* 14 */ "  [listeners.tls]",
  /* 15 */ '  cert = """',
  /* 16 */ "multi [[x]]",
  /* 17 */ 'line"""',
  /* 18 */ "  key = 'k2'",
  /* 19 */ "  [[listeners.routes]]",
  /* 20 */ '  "path_prefix" = "/v1/"',
  /* 21 */ "[[pools]]",
  /* 22 */ 'name = "p"',
  /* 23 */ 'health.path = "/h"',
  /* 24 */ "backends = [",
  /* 25 */ '  { address = "127.0.0.1:1" },  # first',
  /* 26 */ "  {",
  /* 27 */ '    address = "127.0.0.1:2", weight = 3',
  /* 28 */ "  },",
  /* 29 */ "]",
  /* 30 */ "[pools.outlier]",
  /* 31 */ "consecutive_5xx = 3",
].join("\n");

Deno.test("locator: tables, arrays of tables, nesting, inline tables, multi-line arrays", () => {
  parse(SOURCE); // the fixture is valid TOML (the locator only ever sees parsed-OK text)
  const loc = new KeyLocator(SOURCE);
  const at = (path: string) => {
    const p = loc.find(path);
    return p ? `${p.line}:${p.column}` : "none";
  };
  assert.equal(at("runtime"), "2:1");
  assert.equal(at("runtime.drain_timeout"), "3:1");
  assert.equal(at("listeners"), "5:1");
  assert.equal(at("listeners[0]"), "5:1");
  assert.equal(at("listeners[0].name"), "6:1");
  // Inline tables: each key at its own column, nested arrays of inline tables too.
  assert.equal(at("listeners[0].tls"), "7:1");
  assert.equal(at("listeners[0].tls.cert"), "7:9");
  assert.equal(at("listeners[0].tls.key"), "7:25");
  assert.equal(at("listeners[0].tls.certificates"), "7:40");
  assert.equal(at("listeners[0].tls.certificates[0]"), "7:56");
  assert.equal(at("listeners[0].tls.certificates[0].server_names"), "7:58");
  assert.equal(at("listeners[0].tls.certificates[0].cert"), "7:80");
  // Arrays of tables nested in the latest parent element.
  assert.equal(at("listeners[0].routes[0]"), "8:3");
  assert.equal(at("listeners[0].routes[0].pool"), "9:3");
  assert.equal(at("listeners[0].routes[1].respond.status"), "11:15");
  assert.equal(at("listeners[0].routes[1].respond.body"), "11:29");
  assert.equal(at("listeners[1]"), "12:1");
  assert.equal(at("listeners[1].name"), "13:1");
  // A sub-table header of the second element; a multi-line string doesn't confuse the scan.
  assert.equal(at("listeners[1].tls"), "14:3");
  assert.equal(at("listeners[1].tls.cert"), "15:3");
  assert.equal(at("listeners[1].tls.key"), "18:3");
  assert.equal(at("listeners[1].routes[0]"), "19:3");
  assert.equal(at("listeners[1].routes[0].path_prefix"), "20:3");
  // Dotted keys, multi-line arrays of inline tables, a sub-table after them.
  assert.equal(at("pools[0].health.path"), "23:1");
  assert.equal(at("pools[0].backends"), "24:1");
  assert.equal(at("pools[0].backends[0]"), "25:3");
  assert.equal(at("pools[0].backends[0].address"), "25:5");
  assert.equal(at("pools[0].backends[1]"), "26:3");
  assert.equal(at("pools[0].backends[1].address"), "27:5");
  assert.equal(at("pools[0].backends[1].weight"), "27:30");
  assert.equal(at("pools[0].outlier.consecutive_5xx"), "31:1");
});

Deno.test("locator: unknown paths fall back to the nearest located ancestor", () => {
  const loc = new KeyLocator(SOURCE);
  // A key that is absent (missing required key) points at its table.
  assert.deepEqual(loc.find("listeners[0].routes[0].host"), { line: 8, column: 3 });
  assert.deepEqual(loc.find("listeners[1].bind"), { line: 12, column: 1 });
  assert.deepEqual(loc.find("pools[0].backends[1].tls.ca"), { line: 26, column: 3 });
  assert.equal(loc.find("observability.admin_bind"), undefined);
  assert.equal(loc.find(""), undefined);
});

Deno.test("locator: CRLF line ends and quoted dotted keys", () => {
  const src = '[a]\r\n"b.c" = 1\r\nd . e = { f = 2 }\r\n';
  const loc = new KeyLocator(src);
  assert.deepEqual(loc.find("a.b.c"), { line: 2, column: 1 });
  assert.deepEqual(loc.find("a.d.e.f"), { line: 3, column: 11 });
});

Deno.test("locator: text it cannot follow degrades to ancestors, never throws", () => {
  const inputs = ["[[unterminated", 'a = "open', "= 1", "[a]\nb = 1\n???", "x = [1, 2", "\u0000\u0001", ""];
  for (const src of inputs) {
    const loc = new KeyLocator(src);
    assert.equal(loc.find("zzz.yyy"), undefined, JSON.stringify(src));
  }
  const partial = new KeyLocator("[a]\nb = 1\n???\n[c]\nd = 2");
  assert.deepEqual(partial.find("a.b"), { line: 2, column: 1 });
  assert.equal(partial.find("c.d"), undefined);
});
