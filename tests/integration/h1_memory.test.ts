/**
 * Streaming keeps memory flat: a 1 GiB upload (chunked from curl's stdin, and with
 * Content-Length from a raw client) and a 1 GiB download (Content-Length and chunked) through
 * the gateway, while the gateway process's RSS is sampled from /proc every 200 ms. Growth
 * over the pre-transfer baseline must stay under 64 MiB, and the bytes must arrive intact
 * (sha256 on the far side).
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type GatewayProcess, startGateway } from "../helpers/gateway.ts";
import { type Origin, startOrigin } from "../helpers/origin.ts";
import { RawClient, text } from "../unit/h1/raw_client.ts";

const GiB = 1024 * 1024 * 1024;
const LIMIT = 64 * 1024 * 1024;

function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Samples the RSS every 200 ms while `work` runs; returns the peak. */
async function peakRss<T>(pid: number, work: () => Promise<T>): Promise<{ peak: number; result: T }> {
  let peak = rssBytes(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(pid));
    } catch { /* process gone: the work will fail */ }
  }, 200);
  try {
    const result = await work();
    peak = Math.max(peak, rssBytes(pid));
    return { peak, result };
  } finally {
    clearInterval(timer);
  }
}

/** 1 MiB blocks of noise, each stamped with its index so no two blocks are equal. */
function* blocks(total: number): Generator<Uint8Array> {
  const block = new Uint8Array(1024 * 1024);
  const words = new Uint32Array(block.buffer);
  let x = 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let sent = 0, i = 0; sent < total; i++) {
    words[0] = i;
    const n = Math.min(block.length, total - sent);
    sent += n;
    yield n === block.length ? block : block.subarray(0, n);
  }
}

async function baseline(gw: GatewayProcess): Promise<number> {
  // warm the paths (JIT, pools, buffers) so the baseline is the steady state
  for (let i = 0; i < 20; i++) {
    const r = await fetch(gw.url("web", "/bytes/1048576"));
    await r.arrayBuffer();
    const p = await fetch(gw.url("web", "/sha256"), { method: "POST", body: new Uint8Array(1 << 20) });
    await p.arrayBuffer();
  }
  await new Promise((r) => setTimeout(r, 300));
  return rssBytes(gw.child.pid);
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

async function withGateway(fn: (gw: GatewayProcess, origin: Origin) => Promise<void>): Promise<void> {
  const origin = await startOrigin("mem-origin");
  const gw = await startGateway(`
[observability]
admin_bind = "127.0.0.1:0"
access_log = false


[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
max_body_size = "2GiB"
  [[listeners.routes]]
  pool = "app"

[[pools]]
name = "app"
  [[pools.backends]]
  address = "${origin.address}"
`);
  try {
    await fn(gw, origin);
  } finally {
    assert.equal(await gw.stop(), 0);
    await origin.stop();
  }
}

Deno.test("1 GiB uploads (chunked via curl stdin, Content-Length via raw client) keep RSS growth < 64 MiB", async () => {
  await withGateway(async (gw) => {
    const pid = gw.child.pid;
    const base = await baseline(gw);

    // chunked: curl -T - streams stdin as a chunked POST
    const { peak: peak1, result: r1 } = await peakRss(pid, async () => {
      const hash = createHash("sha256");
      const curl = new Deno.Command("curl", {
        args: ["-sS", "--fail", "-X", "POST", "-T", "-", "-H", "Expect:", gw.url("web", "/sha256")],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const timer = setTimeout(() => curl.kill("SIGKILL"), 55_000);
      const w = curl.stdin.getWriter();
      for (const b of blocks(GiB)) {
        hash.update(b);
        await w.write(b);
      }
      await w.close();
      const out = await curl.output();
      clearTimeout(timer);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      return { json: JSON.parse(text(out.stdout)), sha: hash.digest("hex") };
    });
    assert.equal(r1.json.bytes, GiB);
    assert.equal(r1.json.sha256, r1.sha);
    assert.equal(r1.json.headers["transfer-encoding"], "chunked");
    console.log(`chunked upload: baseline ${mib(base)}, peak ${mib(peak1)}, growth ${mib(peak1 - base)}`);
    assert.ok(peak1 - base < LIMIT, `RSS grew by ${mib(peak1 - base)}`);

    // Content-Length: a raw client streams the generated body
    const { peak: peak2, result: r2 } = await peakRss(pid, async () => {
      const hash = createHash("sha256");
      const c = await RawClient.connect(gw.ports.web);
      try {
        await c.write(`POST /sha256 HTTP/1.1\r\nHost: h\r\nContent-Length: ${GiB}\r\n\r\n`);
        for (const b of blocks(GiB)) {
          hash.update(b);
          await c.write(b);
        }
        const res = await c.readResponse(30_000);
        assert.equal(res.status, 200);
        return { json: JSON.parse(text(res.body)), sha: hash.digest("hex") };
      } finally {
        c.close();
      }
    });
    assert.equal(r2.json.bytes, GiB);
    assert.equal(r2.json.sha256, r2.sha);
    assert.equal(r2.json.headers["content-length"], String(GiB));
    console.log(`length upload: peak ${mib(peak2)}, growth ${mib(peak2 - base)}`);
    assert.ok(peak2 - base < LIMIT, `RSS grew by ${mib(peak2 - base)}`);
  });
});

Deno.test("1 GiB downloads (Content-Length and chunked) and a slow reader keep RSS growth < 64 MiB", async () => {
  await withGateway(async (gw) => {
    const pid = gw.child.pid;
    const base = await baseline(gw);
    for (const q of ["", "?chunked=1"]) {
      const { peak, result } = await peakRss(pid, async () => {
        const out = await new Deno.Command("curl", {
          args: [
            "-sS",
            "--fail",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            "--max-time",
            "55",
            gw.url("web", `/bytes/${GiB}${q}`),
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
        return Number(text(out.stdout));
      });
      assert.equal(result, GiB);
      console.log(`download${q}: baseline ${mib(base)}, peak ${mib(peak)}, growth ${mib(peak - base)}`);
      assert.ok(peak - base < LIMIT, `RSS grew by ${mib(peak - base)}`);
    }
    // Backpressure: a client reading at 64 MB/s from a backend that could send ~1 GB/s. If the
    // gateway read ahead of the client, 256 MiB would pile up in it.
    const { peak, result } = await peakRss(pid, async () => {
      const out = await new Deno.Command("curl", {
        args: [
          "-sS",
          "--fail",
          "-o",
          "/dev/null",
          "-w",
          "%{size_download}",
          "--limit-rate",
          "64M",
          "--max-time",
          "30",
          gw.url("web", `/bytes/${256 * 1024 * 1024}`),
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      return Number(text(out.stdout));
    });
    assert.equal(result, 256 * 1024 * 1024);
    console.log(`slow-reader download: peak ${mib(peak)}, growth ${mib(peak - base)}`);
    assert.ok(peak - base < LIMIT, `RSS grew by ${mib(peak - base)} behind a slow reader`);
  });
});
