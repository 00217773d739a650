/**
 * connectionTokens (src/http/headers.ts) decides keep-alive on both sides and which fields are
 * hop-by-hop. Its shortcuts for the usual single `keep-alive` / `close` values must give the
 * same answers as the general parse, whatever the case, spacing or number of fields; the
 * hop-by-hop switch must name exactly the fields the RFCs do.
 */

import assert from "node:assert/strict";
import {
  connectionTokens,
  downstreamResponseHeaders,
  isHopByHop,
  lowerCaseName,
} from "../../../src/http/headers.ts";

Deno.test("connectionTokens: the usual values, other spellings, lists and repeated fields", () => {
  const cases: [string[], string[]][] = [
    [["host", "a"], []],
    [["connection", "keep-alive"], ["keep-alive"]],
    [["connection", "Keep-Alive"], ["keep-alive"]],
    [["connection", "KEEP-ALIVE"], ["keep-alive"]],
    [["connection", "close"], ["close"]],
    [["connection", "Close"], ["close"]],
    [["connection", " close "], ["close"]],
    [["connection", ""], []],
    [["connection", "Upgrade, close"], ["upgrade", "close"]],
    [["connection", "keep-alive", "connection", "x-secret"], ["keep-alive", "x-secret"]],
    [["connection", "close", "connection", "close"], ["close", "close"]],
    [["connection", "x-a,, x-b ,"], ["x-a", "x-b"]],
  ];
  for (const [headers, want] of cases) {
    assert.deepEqual([...connectionTokens(headers)], want, JSON.stringify(headers));
  }
});

Deno.test("connectionTokens: the shared answers cannot be changed by a caller", () => {
  const tokens = connectionTokens(["connection", "close"]) as string[];
  assert.throws(() => tokens.push("keep-alive"), TypeError);
  assert.deepEqual([...connectionTokens(["connection", "close"])], ["close"]);
});

Deno.test("a field named in a second Connection field is still dropped on the way to the client", () => {
  const out = downstreamResponseHeaders(
    ["connection", "keep-alive", "connection", "x-secret", "x-secret", "1", "x-kept", "2"],
    "1.1",
  );
  assert.deepEqual(out, ["x-kept", "2", "via", out[3]]);
  assert.match(out[3], /^1\.1 /);
});

Deno.test("isHopByHop: the connection-specific fields of RFC 9110 §7.6.1 and RFC 9113 §8.2.2, nothing else", () => {
  const hop = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
  ];
  for (const n of [...hop, "http2-settings"]) assert.equal(isHopByHop(n), true, n);
  for (const n of ["content-length", "host", "trailers", "upgrade-insecure-requests", "x-te", ""]) {
    assert.equal(isHopByHop(n), false, n);
  }
});

Deno.test("lowerCaseName: lower-case names come back as they are, others lower-cased", () => {
  const already = "content-type";
  assert.equal(lowerCaseName(already), already);
  assert.equal(lowerCaseName("Content-Type"), "content-type");
  assert.equal(lowerCaseName("X-ABC-z"), "x-abc-z");
  assert.equal(lowerCaseName(""), "");
  assert.equal(
    lowerCaseName("x-\u00c4"),
    "x-\u00c4",
    "no ASCII capital: returned as it is (valid names are ASCII tokens anyway)",
  );
});
