/** Did-you-mean: edit distance and the nearest plausible candidate. */
import assert from "node:assert/strict";
import { editDistance, nearest } from "../../../src/config/suggest.ts";

Deno.test("editDistance is Levenshtein distance", () => {
  assert.equal(editDistance("", ""), 0);
  assert.equal(editDistance("abc", ""), 3);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("max_conections", "max_connections"), 1);
  assert.equal(editDistance("flaw", "lawn"), 2);
  assert.equal(editDistance("same", "same"), 0);
});

Deno.test("nearest: typos, transpositions, case, and nothing for unrelated words", () => {
  const listenerKeys = [
    "name",
    "bind",
    "protocol",
    "tls",
    "max_connections",
    "max_connections_per_ip",
    "routes",
  ];
  assert.equal(nearest("max_conections", listenerKeys), "max_connections");
  assert.equal(nearest("max_connection_per_ip", listenerKeys), "max_connections_per_ip");
  assert.equal(nearest("protcol", listenerKeys), "protocol");
  assert.equal(nearest("rotues", listenerKeys), "routes");
  assert.equal(nearest("Bind", listenerKeys), "bind");
  assert.equal(nearest("tsl", listenerKeys), "tls");
  assert.equal(nearest("upstreams", listenerKeys), undefined);
  assert.equal(nearest("x", []), undefined);
  const algorithms = ["round_robin", "weighted_round_robin", "least_request", "maglev", "ring_hash"];
  assert.equal(nearest("roundrobin", algorithms), "round_robin");
  assert.equal(nearest("magelv", algorithms), "maglev");
  assert.equal(nearest("leastrequest", algorithms), "least_request");
  assert.equal(nearest("fastest", algorithms), undefined);
});
