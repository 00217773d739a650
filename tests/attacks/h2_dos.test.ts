/**
 * The HTTP/2 DoS catalog against the live gateway (src/http/h2/limits.ts, [listeners.http2]):
 * a raw-frame client sends each abuse pattern on its own connection and the test asserts the
 * answer (RST_STREAM / GOAWAY and its code), the named counter in /metrics, that a bystander on
 * another connection is served while the attack runs, and that the gateway's resident memory
 * stays bounded over the whole catalog (a slow reader of a 200 MB body included).
 * Thresholds are configured low so each pattern crosses them in a few hundred frames.
 */

import assert from "node:assert/strict";
import { configHead, type GatewayProcess, startGateway } from "../helpers/gateway.ts";
import { assertSettled } from "../helpers/settled.ts";
import { type Origin, startOrigin } from "../helpers/origin.ts";
import { collect, concat, RawH2, u32 } from "../helpers/h2_raw.ts";
import { encodeFrame, ErrorCode, FrameType, settingsFrame, SettingsId } from "../../src/http/h2/frames.ts";
import type { HeaderField } from "../../src/http/h2/hpack.ts";

/** Paths under /o/ go to the origin (authority "origin"), the rest to the gateway's own answer. */
const target = (path: string): HeaderField[] =>
  path.startsWith("/o/")
    ? [[":scheme", "http"], [":path", path.slice(2)], [":authority", "origin"]]
    : [[":scheme", "http"], [":path", path], [":authority", "localhost"]];
const GET = (path: string): HeaderField[] => [[":method", "GET"], ...target(path)];
const POST = (path: string): HeaderField[] => [[":method", "POST"], ...target(path)];

function config(origin: Origin): string {
  return `${configHead()}[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
body_timeout = "5s"
  [listeners.http2]
  max_concurrent_streams = 30
  max_header_block_size = "16KiB"
  max_continuation_frames = 8
  flood_window = "10s"
  rapid_reset_max = 20
  made_you_reset_max = 20
  settings_flood_max = 20
  ping_flood_max = 20
  empty_data_max = 20
  window_update_flood_max = 50
  noop_frame_max = 50
  stall_timeout = "1s"
  [[listeners.routes]]
  host = "origin"
  pool = "origin"
  [[listeners.routes]]
  respond = { status = 200, body = "bystander ok\\n" }
[[pools]]
name = "origin"
  [[pools.backends]]
  address = "${origin.address}"
`;
}

async function metrics(gw: GatewayProcess): Promise<string> {
  return await (await fetch(gw.admin("/metrics"))).text();
}

function eventCount(text: string, event: string): number {
  const re = new RegExp(`^expressgateway_protocol_events_total\\{[^}]*event="${event}"[^}]*\\} (\\d+)`, "m");
  const m = re.exec(text);
  return m ? Number(m[1]) : 0;
}

async function rssKb(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+)/.exec(await Deno.readTextFile(`/proc/${pid}/status`));
  return m ? Number(m[1]) : 0;
}

/** One GET on its own connection; resolves with the :status (the bystander). */
async function bystander(port: number): Promise<number> {
  const c = await RawH2.connect(port);
  try {
    await c.send(c.headers(1, GET("/")));
    const got = await collect(c, 5000, (g) => g.statuses.has(1));
    return got.statuses.get(1) ?? 0;
  } finally {
    c.close();
  }
}

Deno.test("h2 DoS catalog: each abuse gets its answer and its counter, others are served, memory stays bounded", async (t) => {
  const origin = await startOrigin("dos-origin");
  let gw: GatewayProcess | undefined;
  let peakKb = 0;
  let sampling = true;
  try {
    gw = await startGateway(config(origin));
    const port = gw.ports.web;
    const pid = gw.child.pid;
    // Warm up (JIT, pools) before the baseline.
    for (let i = 0; i < 3; i++) assert.equal(await bystander(port), 200);
    const baseKb = await rssKb(pid);
    const sampler = (async () => {
      while (sampling) {
        peakKb = Math.max(peakKb, await rssKb(pid).catch(() => 0));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    /** Runs `attack` on a fresh connection with a bystander on another; returns what the attacker got. */
    const attack = async (
      fn: (c: RawH2) => Promise<unknown>,
      timeoutMs = 5000,
      stop?: Parameters<typeof collect>[2],
    ) => {
      const c = await RawH2.connect(port);
      try {
        const [, got, status] = await Promise.all([
          fn(c),
          collect(c, timeoutMs, stop),
          bystander(port),
        ]);
        assert.equal(status, 200, "the bystander is served during the attack");
        return got;
      } finally {
        c.close();
      }
    };
    const expectEvent = async (event: string) => {
      const n = eventCount(await metrics(gw!), event);
      assert.ok(n >= 1, `protocol_events_total{event="${event}"} should count the attack, got ${n}`);
    };

    await t.step(
      "Rapid Reset (CVE-2023-44487): HEADERS + RST_STREAM pairs → GOAWAY(ENHANCE_YOUR_CALM)",
      async () => {
        const got = await attack(async (c) => {
          const frames: Uint8Array[] = [];
          for (let i = 0; i < 60; i++) {
            const id = 1 + 2 * i;
            frames.push(c.headers(id, GET("/o/slow?ms=300")));
            frames.push(encodeFrame(FrameType.RST_STREAM, 0, id, u32(ErrorCode.CANCEL)));
          }
          await c.send(concat(frames));
        });
        assert.equal(got.goaway, ErrorCode.ENHANCE_YOUR_CALM);
        await expectEvent("h2_rapid_reset");
      },
    );

    await t.step(
      "MadeYouReset (CVE-2025-8671): frames that force server resets → GOAWAY(ENHANCE_YOUR_CALM)",
      async () => {
        const got = await attack(async (c) => {
          const frames: Uint8Array[] = [];
          for (let i = 0; i < 40; i++) {
            const id = 1 + 2 * i;
            // DATA after END_STREAM on a stream still being answered: a stream error we must reset.
            frames.push(c.headers(id, GET("/o/slow?ms=300")));
            frames.push(encodeFrame(FrameType.DATA, 0, id, new Uint8Array([1])));
          }
          await c.send(concat(frames));
        });
        assert.ok(got.resets.size >= 1, "the first provoked errors are RST_STREAMs");
        assert.equal([...got.resets.values()][0], ErrorCode.STREAM_CLOSED);
        assert.equal(got.goaway, ErrorCode.ENHANCE_YOUR_CALM);
        await expectEvent("h2_made_you_reset");
      },
    );

    await t.step(
      "CONTINUATION flood (CVE-2024-27316): endless CONTINUATION frames → GOAWAY(ENHANCE_YOUR_CALM)",
      async () => {
        const got = await attack(async (c) => {
          const block = c.block(GET("/"));
          const frames = [encodeFrame(FrameType.HEADERS, 0, 1, block.subarray(0, 1))];
          for (let i = 0; i < 200; i++) {
            frames.push(encodeFrame(FrameType.CONTINUATION, 0, 1, new Uint8Array(0)));
          }
          await c.send(concat(frames));
        });
        assert.equal(got.goaway, ErrorCode.ENHANCE_YOUR_CALM);
        await expectEvent("h2_continuation_flood");
      },
    );

    await t.step("CONTINUATION with a huge field block → GOAWAY(ENHANCE_YOUR_CALM)", async () => {
      const got = await attack(async (c) => {
        const frames = [encodeFrame(FrameType.HEADERS, 0, 1, new Uint8Array(4000).fill(0x40))];
        for (let i = 0; i < 6; i++) {
          frames.push(encodeFrame(FrameType.CONTINUATION, 0, 1, new Uint8Array(4000)));
        }
        await c.send(concat(frames));
      });
      assert.equal(got.goaway, ErrorCode.ENHANCE_YOUR_CALM);
      await expectEvent("h2_header_block_too_large");
    });

    await t.step(
      "HPACK bomb: one table entry referenced thousands of times → 431, connection lives",
      async () => {
        // Hand-encoded so this connection's encoder never indexes anything: GET / with static
        // indices and :authority as a literal without indexing.
        const authority = new TextEncoder().encode("localhost");
        const plainGet = new Uint8Array([0x82, 0x86, 0x84, 0x01, authority.length, ...authority]);
        const got = await attack(
          async (c) => {
            // Literal with incremental indexing, new name "x-bomb", 4000-octet value (7-bit prefix
            // 127 + varint 3873 = a1 1e); then 10000 one-octet references to it (index 62):
            // ~14 KB on the wire, ~40 MB once decoded.
            const name = new TextEncoder().encode("x-bomb");
            const literal = new Uint8Array([0x40, name.length, ...name, 0x7f, 0xa1, 0x1e]);
            const value = new Uint8Array(4000).fill(0x61);
            const refs = new Uint8Array(10000).fill(0xbe);
            await c.send(encodeFrame(FrameType.HEADERS, 0x5, 1, concat([plainGet, literal, value, refs])));
            // The connection survives: a normal request after it is answered.
            await new Promise((r) => setTimeout(r, 200));
            await c.send(encodeFrame(FrameType.HEADERS, 0x5, 3, plainGet));
          },
          3000,
          (g) => g.statuses.has(3),
        );
        assert.equal(got.statuses.get(1), 431);
        assert.equal(got.statuses.get(3), 200);
        assert.equal(got.goaway, undefined);
        await expectEvent("h2_header_list_too_large");
      },
    );

    await t.step("SETTINGS flood → GOAWAY(ENHANCE_YOUR_CALM)", async () => {
      const got = await attack(async (c) => {
        const frames: Uint8Array[] = [];
        for (let i = 0; i < 200; i++) {
          frames.push(settingsFrame([[SettingsId.MAX_HEADER_LIST_SIZE, 16384 + i]]));
        }
        await c.send(concat(frames));
      });
      assert.equal(got.goaway, ErrorCode.ENHANCE_YOUR_CALM);
      await expectEvent("h2_settings_flood");
    });

    await t.step("PING flood → GOAWAY(ENHANCE_YOUR_CALM)", async () => {
      const got = await attack(async (c) => {
        const frames: Uint8Array[] = [];
        for (let i = 0; i < 500; i++) {
          frames.push(encodeFrame(FrameType.PING, 0, 0, new Uint8Array(8).fill(i & 255)));
        }
        await c.send(concat(frames));
      });
      assert.equal(got.goaway, ErrorCode.ENHANCE_YOUR_CALM);
      await expectEvent("h2_ping_flood");
    });

    await t.step("empty DATA flood → GOAWAY(ENHANCE_YOUR_CALM)", async () => {
      const got = await attack(async (c) => {
        const frames = [c.headers(1, POST("/o/sha256"), 0x4)];
        for (let i = 0; i < 200; i++) frames.push(encodeFrame(FrameType.DATA, 0, 1, new Uint8Array(0)));
        await c.send(concat(frames));
      });
      assert.equal(got.goaway, ErrorCode.ENHANCE_YOUR_CALM);
      await expectEvent("h2_empty_data_flood");
    });

    await t.step("WINDOW_UPDATE flood → GOAWAY(ENHANCE_YOUR_CALM)", async () => {
      const got = await attack(async (c) => {
        const frames: Uint8Array[] = [];
        for (let i = 0; i < 300; i++) frames.push(encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, u32(1)));
        await c.send(concat(frames));
      });
      assert.equal(got.goaway, ErrorCode.ENHANCE_YOUR_CALM);
      await expectEvent("h2_window_update_flood");
    });

    await t.step(
      "no-op frames (PRIORITY, unknown types, unsolicited ACKs) → GOAWAY(ENHANCE_YOUR_CALM)",
      async () => {
        const got = await attack(async (c) => {
          const frames: Uint8Array[] = [];
          for (let i = 0; i < 100; i++) {
            frames.push(encodeFrame(FrameType.PRIORITY, 0, 101 + 2 * i, new Uint8Array([0, 0, 0, 0, 15])));
            frames.push(encodeFrame(0xfa, 0, 0, new Uint8Array(16)));
            frames.push(encodeFrame(FrameType.PING, 1, 0, new Uint8Array(8)));
          }
          await c.send(concat(frames));
        });
        assert.equal(got.goaway, ErrorCode.ENHANCE_YOUR_CALM);
        await expectEvent("h2_noop_frame_flood");
      },
    );

    await t.step("stream-0 abuse: DATA on stream 0 / PING on a stream → GOAWAY(PROTOCOL_ERROR)", async () => {
      const a = await attack((c) => c.send(encodeFrame(FrameType.DATA, 0, 0, new Uint8Array(4))));
      assert.equal(a.goaway, ErrorCode.PROTOCOL_ERROR);
      const b = await attack((c) => c.send(encodeFrame(FrameType.PING, 0, 1, new Uint8Array(8))));
      assert.equal(b.goaway, ErrorCode.PROTOCOL_ERROR);
      const n = eventCount(await metrics(gw!), "h2_stream0_abuse");
      assert.ok(n >= 2, `h2_stream0_abuse counted twice, got ${n}`);
    });

    await t.step("max concurrent streams: streams beyond 30 are refused, the rest answered", async () => {
      const got = await attack(
        async (c) => {
          const frames: Uint8Array[] = [];
          for (let i = 0; i < 35; i++) frames.push(c.headers(1 + 2 * i, GET("/o/slow?ms=200")));
          await c.send(concat(frames));
        },
        5000,
        (g) => g.statuses.size === 30 && g.resets.size === 5,
      );
      const refused = [...got.resets.values()].filter((code) => code === ErrorCode.REFUSED_STREAM).length;
      assert.equal(refused, 5);
      assert.equal(got.goaway, undefined);
      assert.equal([...got.statuses.values()].filter((s) => s === 200).length, 30);
      await expectEvent("h2_refused_stream");
    });

    await t.step("zero-window stall of one stream → RST_STREAM(CANCEL) while the other moves", async () => {
      const c = await RawH2.connect(port, { settings: settingsFrame([[SettingsId.INITIAL_WINDOW_SIZE, 0]]) });
      try {
        await c.send(c.headers(1, GET("/o/bytes/100000")), c.headers(3, GET("/o/bytes/100000")));
        // Stream 3 gets a little window every 150 ms; stream 1 never does.
        const feeder = (async () => {
          for (let i = 0; i < 16; i++) {
            await new Promise((r) => setTimeout(r, 150));
            await c.send(encodeFrame(FrameType.WINDOW_UPDATE, 0, 3, u32(1000))).catch(() => {});
          }
        })();
        const got = await collect(c, 4000, (g) => g.resets.has(1));
        await feeder;
        assert.equal(got.resets.get(1), ErrorCode.CANCEL);
        assert.equal(got.goaway, undefined);
        assert.equal(got.resets.has(3), false);
        assert.equal(await bystander(port), 200);
      } finally {
        c.close();
      }
      await expectEvent("h2_zero_window_stall");
    });

    await t.step(
      "a connection that never opens its window → GOAWAY(ENHANCE_YOUR_CALM) and close",
      async () => {
        const got = await attack(async (c) => {
          await c.send(settingsFrame([[SettingsId.INITIAL_WINDOW_SIZE, 0]]));
          await c.send(c.headers(1, GET("/o/bytes/100000")));
        }, 5000);
        assert.equal(got.goaway, ErrorCode.ENHANCE_YOUR_CALM);
        await expectEvent("h2_connection_stall");
      },
    );

    await t.step("a client that stops reading a 200 MB body: cut off, memory bounded", async () => {
      const c = await RawH2.connect(port, {
        settings: settingsFrame([[SettingsId.INITIAL_WINDOW_SIZE, 0x7fffffff]]),
      });
      try {
        await c.send(
          encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, u32(0x7fffffff - 65535)),
          c.headers(1, GET(`/o/bytes/${200 * 1024 * 1024}`)),
        );
        // Never read: the gateway's writes stall, so must the upstream reads.
        const before = eventCount(await metrics(gw!), "h2_connection_stall");
        const deadline = Date.now() + 8000;
        let after = before;
        while (after === before && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 250));
          after = eventCount(await metrics(gw!), "h2_connection_stall");
        }
        assert.ok(after > before, "the stalled connection is counted");
        assert.equal(await bystander(port), 200);
      } finally {
        c.close();
      }
    });

    sampling = false;
    await sampler;
    const growthMb = (peakKb - baseKb) / 1024;
    console.log(`gateway RSS: base ${Math.round(baseKb / 1024)} MiB, peak ${Math.round(peakKb / 1024)} MiB`);
    // A 200 MB body relayed without backpressure alone would add ~200 MiB.
    assert.ok(growthMb < 64, `gateway RSS grew by ${growthMb.toFixed(1)} MiB during the attacks`);
    assert.equal(gw.child.pid, pid);
    // Every attack connection is closed: nothing they opened may still be counted.
    await assertSettled(gw);
  } finally {
    sampling = false;
    if (gw) assert.equal(await gw.stop(), 0);
    await origin.stop();
  }
});
