import assert from "node:assert/strict";
import {
  parseRequestFields,
  parseResponseFields,
  parseTrailerFields,
  requestFields,
  responseFields,
  trailerFields,
  validFieldName,
  validFieldValue,
} from "../../../src/http/h2/headers.ts";
import type { HeaderField } from "../../../src/http/h2/hpack.ts";

const base: HeaderField[] = [[":method", "GET"], [":scheme", "https"], [":path", "/a?b=1"], [
  ":authority",
  "example.com:8443",
]];

Deno.test("h2 headers: a valid request becomes an exchange head; cookies joined, host/te/expect consumed", () => {
  const h = parseRequestFields(
    [
      ...base,
      ["cookie", "a=1"],
      ["accept", "*/*"],
      ["cookie", "b=2"],
      ["te", "trailers"],
      ["expect", "100-continue"],
      ["content-length", "12"],
    ],
    false,
  );
  assert.ok(typeof h !== "string", String(h));
  assert.equal(h.method, "GET");
  assert.equal(h.scheme, "https");
  assert.equal(h.authority, "example.com:8443");
  assert.equal(h.path, "/a?b=1");
  assert.equal(h.contentLength, 12);
  assert.equal(h.expectContinue, true);
  assert.deepEqual(h.headers, ["accept", "*/*", "cookie", "a=1; b=2"]);
});

Deno.test("h2 headers: Host stands in for a missing :authority; both must agree", () => {
  const noAuth = base.filter((f) => f[0] !== ":authority");
  const h = parseRequestFields([...noAuth, ["host", "h.example"]], false);
  assert.ok(typeof h !== "string");
  assert.equal(h.authority, "h.example");
  assert.equal(typeof parseRequestFields(noAuth, false), "string");
  assert.equal(typeof parseRequestFields([...base, ["host", "other.example"]], false), "string");
  assert.ok(typeof parseRequestFields([...base, ["host", "EXAMPLE.com:8443"]], false) !== "string");
});

Deno.test("h2 headers: every malformed request is refused with a reason (RFC 9113 §8.2, §8.3)", () => {
  const bad: Array<[string, HeaderField[]]> = [
    ["uppercase", [...base, ["Accept", "x"]]],
    ["space in name", [...base, ["a b", "x"]]],
    ["colon in name", [...base, ["a:b", "x"]]],
    ["NUL in value", [...base, ["a", "x\0y"]]],
    ["CR in value", [...base, ["a", "x\ry"]]],
    ["leading space", [...base, ["a", " x"]]],
    ["trailing tab", [...base, ["a", "x\t"]]],
    ["connection", [...base, ["connection", "close"]]],
    ["keep-alive", [...base, ["keep-alive", "5"]]],
    ["proxy-connection", [...base, ["proxy-connection", "x"]]],
    ["transfer-encoding", [...base, ["transfer-encoding", "chunked"]]],
    ["upgrade", [...base, ["upgrade", "websocket"]]],
    ["te gzip", [...base, ["te", "trailers, gzip"]]],
    ["pseudo after regular", [[":method", "GET"], ["a", "1"], [":scheme", "http"], [":path", "/"], [
      ":authority",
      "x",
    ]]],
    ["unknown pseudo", [...base, [":x", "1"]]],
    [":status in request", [...base, [":status", "200"]]],
    ["duplicate :path", [...base, [":path", "/"]]],
    ["missing :method", base.slice(1)],
    ["empty :path", [[":method", "GET"], [":scheme", "http"], [":path", ""], [":authority", "x"]]],
    ["relative :path", [[":method", "GET"], [":scheme", "http"], [":path", "a"], [":authority", "x"]]],
    ["space in :path", [[":method", "GET"], [":scheme", "http"], [":path", "/a b"], [":authority", "x"]]],
    ["* for GET", [[":method", "GET"], [":scheme", "http"], [":path", "*"], [":authority", "x"]]],
    ["bad method", [[":method", "G T"], [":scheme", "http"], [":path", "/"], [":authority", "x"]]],
    ["userinfo", [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "u@x"]]],
    ["bad content-length", [...base, ["content-length", "1x"]]],
    ["two content-lengths", [...base, ["content-length", "1"], ["content-length", "2"]]],
    ["CONNECT with :path", [[":method", "CONNECT"], [":authority", "x:443"], [":path", "/"]]],
    ["CONNECT without :authority", [[":method", "CONNECT"]]],
    [":protocol disabled", [
      ...base.map((f) => f[0] === ":method" ? [":method", "CONNECT"] as HeaderField : f),
      [
        ":protocol",
        "websocket",
      ],
    ]],
  ];
  for (const [what, fields] of bad) {
    assert.equal(typeof parseRequestFields(fields, false), "string", what);
  }
});

Deno.test("h2 headers: CONNECT and extended CONNECT (RFC 8441) shapes", () => {
  const c = parseRequestFields([[":method", "CONNECT"], [":authority", "db.internal:5432"]], false);
  assert.ok(typeof c !== "string");
  assert.equal(c.path, "db.internal:5432");
  const ws: HeaderField[] = [[":method", "CONNECT"], [":protocol", "websocket"], [":scheme", "https"], [
    ":path",
    "/chat",
  ], [":authority", "x"]];
  const e = parseRequestFields(ws, true);
  assert.ok(typeof e !== "string");
  assert.equal(e.protocol, "websocket");
  assert.equal(e.path, "/chat");
  assert.equal(typeof parseRequestFields(ws, false), "string");
  assert.ok(
    typeof parseRequestFields([[":method", "OPTIONS"], [":scheme", "http"], [":path", "*"], [
      ":authority",
      "x",
    ]], false) !== "string",
  );
});

Deno.test("h2 headers: responses and trailers", () => {
  const r = parseResponseFields([[":status", "200"], ["content-length", "5"], ["x-a", "1"]]);
  assert.ok(typeof r !== "string");
  assert.equal(r.status, 200);
  assert.equal(r.contentLength, 5);
  assert.deepEqual(r.headers, ["content-length", "5", "x-a", "1"]);
  for (
    const bad of [
      [["x-a", "1"]],
      [[":status", "20"]],
      [[":status", "200"], [":status", "200"]],
      [[":status", "200"], [":path", "/"]],
      [["x-a", "1"], [":status", "200"]],
      [[":status", "200"], ["connection", "close"]],
    ] as HeaderField[][]
  ) {
    assert.equal(typeof parseResponseFields(bad), "string", JSON.stringify(bad));
  }
  assert.deepEqual(parseTrailerFields([["grpc-status", "0"]]), ["grpc-status", "0"]);
  assert.equal(typeof parseTrailerFields([[":status", "200"]]), "string");
  assert.equal(typeof parseTrailerFields([["transfer-encoding", "chunked"]]), "string");
});

Deno.test("h2 headers: outgoing request: Host → :authority, cookies split, hop-by-hop dropped", () => {
  const f = requestFields(
    "POST",
    "http",
    "/up",
    [
      "host",
      "api.example",
      "connection",
      "close",
      "cookie",
      "a=1; b=2",
      "te",
      "trailers",
      "x-a",
      "1",
      "content-length",
      "9",
      "keep-alive",
      "5",
    ],
    3,
  );
  assert.deepEqual(f, [
    [":method", "POST"],
    [":scheme", "http"],
    [":authority", "api.example"],
    [":path", "/up"],
    ["cookie", "a=1"],
    ["cookie", "b=2"],
    ["x-a", "1"],
    ["te", "trailers"],
    ["content-length", "3"],
  ]);
  const connect = requestFields("CONNECT", "https", "x:443", ["host", "x:443"], undefined);
  assert.deepEqual(connect, [[":method", "CONNECT"], [":authority", "x:443"]]);
});

Deno.test("h2 headers: outgoing response: :status first, content-length from the body, metadata for HEAD", () => {
  assert.deepEqual(
    responseFields(
      200,
      ["Content-Type", "text/plain", "transfer-encoding", "chunked", "content-length", "99"],
      5,
      false,
    ),
    [[":status", "200"], ["content-type", "text/plain"], ["content-length", "5"]],
  );
  assert.deepEqual(responseFields(200, ["content-length", "99"], undefined, true), [
    [":status", "200"],
    ["content-length", "99"],
  ]);
  assert.deepEqual(trailerFields(["x-checksum", "abc", "connection", "x"]), [["x-checksum", "abc"]]);
});

Deno.test("h2 headers: field name and value rules", () => {
  assert.equal(validFieldName("x-ok_1.2~"), true);
  assert.equal(validFieldName(""), false);
  assert.equal(validFieldName("\u00e9"), false);
  assert.equal(validFieldValue(""), true);
  assert.equal(validFieldValue("a b"), true);
  assert.equal(validFieldValue("caf\u00e9"), true); // obs-text is allowed
  assert.equal(validFieldValue("a\nb"), false);
});
