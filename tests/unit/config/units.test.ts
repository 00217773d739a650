/** Units of the config contract: durations, sizes, host:port (IPv4, names, bracketed IPv6). */
import assert from "node:assert/strict";
import {
  formatDuration,
  formatSize,
  isLoopbackHost,
  isWildcardHost,
  MAX_DURATION_MS,
  parseDuration,
  parseHostPort,
  parseSize,
} from "../../../src/config/units.ts";

Deno.test("parseDuration: every unit, decimals, and rejects", () => {
  const good: Array<[string, number]> = [
    ["0s", 0],
    ["250ms", 250],
    ["10s", 10_000],
    ["1.5s", 1500],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["0.5ms", 1], // rounded to whole milliseconds
    [" 2s ", 2000],
  ];
  for (const [text, ms] of good) assert.equal(parseDuration(text), ms, text);
  for (const bad of ["", "10", "-1s", "+1s", "1 s", "1sec", "1d", "1s500ms", "s", ".5s", "1e3ms", "NaNs"]) {
    assert.equal(parseDuration(bad), undefined, JSON.stringify(bad));
  }
  assert.equal(MAX_DURATION_MS, 2147483647);
});

Deno.test("parseSize: binary and decimal units, rejects negatives and overflow", () => {
  const good: Array<[string, number]> = [
    ["0B", 0],
    ["512B", 512],
    ["64KiB", 65536],
    ["64MiB", 64 * 1024 * 1024],
    ["1GiB", 1024 ** 3],
    ["1KB", 1000],
    ["2MB", 2_000_000],
    ["1GB", 1e9],
    ["1.5KiB", 1536],
    ["8 KiB", 8192],
  ];
  for (const [text, bytes] of good) assert.equal(parseSize(text), bytes, text);
  for (const bad of ["", "64", "-1MiB", "1kib", "1TiB", "1 MiB extra", "MiB", "99999999999GiB"]) {
    assert.equal(parseSize(bad), undefined, JSON.stringify(bad));
  }
});

Deno.test("formatDuration / formatSize pick the largest exact unit", () => {
  assert.equal(formatDuration(0), "0ms");
  assert.equal(formatDuration(1), "1ms");
  assert.equal(formatDuration(1500), "1500ms");
  assert.equal(formatDuration(10_000), "10s");
  assert.equal(formatDuration(120_000), "2m");
  assert.equal(formatDuration(7_200_000), "2h");
  assert.equal(formatSize(0), "0B");
  assert.equal(formatSize(100), "100B");
  assert.equal(formatSize(65536), "64KiB");
  assert.equal(formatSize(64 * 1024 * 1024), "64MiB");
  assert.equal(formatSize(1024 ** 3), "1GiB");
  assert.equal(formatSize(1536), "1536B");
  // Round trip for every format output.
  for (const ms of [1, 999, 1000, 61_000, 3_600_000]) assert.equal(parseDuration(formatDuration(ms)), ms);
  for (const b of [1, 1023, 1024, 1536, 1024 ** 2]) assert.equal(parseSize(formatSize(b)), b);
});

Deno.test("parseHostPort: IPv4, names, :port, bracketed IPv6", () => {
  const good: Array<[string, string, number]> = [
    ["127.0.0.1:8080", "127.0.0.1", 8080],
    ["0.0.0.0:0", "0.0.0.0", 0],
    [":443", "0.0.0.0", 443],
    ["localhost:65535", "localhost", 65535],
    ["api.example.com:80", "api.example.com", 80],
    ["backend-1:9000", "backend-1", 9000],
    ["my_service:80", "my_service", 80],
    ["[::1]:8443", "::1", 8443],
    ["[::]:80", "::", 80],
    ["[2001:db8::1]:53", "2001:db8::1", 53],
    ["[::ffff:127.0.0.1]:80", "::ffff:127.0.0.1", 80],
  ];
  for (const [text, host, port] of good) assert.deepEqual(parseHostPort(text), { host, port }, text);
  const bad = [
    "",
    "8080",
    "127.0.0.1",
    "127.0.0.1:",
    "127.0.0.1:65536",
    "127.0.0.1:99999",
    "127.0.0.1:-1",
    "256.0.0.1:80",
    "1.2.3:80",
    "::1:8080", // IPv6 must be bracketed
    "[::1]",
    "[::1::2]:80",
    "[fe80::1%eth0]:80",
    "[localhost]:80",
    "exa mple.com:80",
    "-bad.example.com:80",
    "host:80:81",
    "http://host:80",
  ];
  for (const text of bad) assert.equal(parseHostPort(text), undefined, JSON.stringify(text));
});

Deno.test("loopback and wildcard hosts", () => {
  for (const h of ["127.0.0.1", "127.1.2.3", "::1", "localhost", "LOCALHOST"]) {
    assert.ok(isLoopbackHost(h), h);
  }
  for (const h of ["0.0.0.0", "10.0.0.1", "::", "example.com", "128.0.0.1"]) assert.ok(!isLoopbackHost(h), h);
  for (const h of ["0.0.0.0", "::", "0:0:0:0:0:0:0:0"]) assert.ok(isWildcardHost(h), h);
  for (const h of ["127.0.0.1", "::1", "localhost"]) assert.ok(!isWildcardHost(h), h);
});
