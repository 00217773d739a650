/**
 * Mutation fuzzing of the live gateway's HTTP/3 front: each round is a QUIC connection that
 * sends valid HTTP/3 (our control stream with SETTINGS, a QPACK encoder stream that inserts
 * entries, a request whose field section references them, sometimes with a body) with 1–3 random
 * byte edits in one of those streams. QUIC itself is left alone (quinn inside Deno owns packets);
 * what is fuzzed is the gateway's own HTTP/3 framing and QPACK decoding.
 *
 * Every round must end within a bound, one way or another: a response, a stream the server
 * resets, or the connection closed by the server with an HTTP/3 or QPACK error code. None may
 * hang, and none may get an answer our decoder cannot read. Afterwards the gateway still
 * answers an HTTP/3 request and has logged no unhandled rejection.
 */

import assert from "node:assert/strict";
import { quicGatewayConfig, startGateway } from "../helpers/gateway.ts";
import { H3Client, makeTestPki } from "../helpers/h3_client.ts";
import { startOrigin } from "../helpers/origin.ts";
import { rng } from "../unit/h2/helpers.ts";
import { hostileBackend, inBatches, mutate, mutatedResponses, tally, within } from "../helpers/fuzz.ts";
import { encodeFrame, encodeSettings, FrameType, Setting, StreamType } from "../../src/http/h3/frames.ts";

const ROUNDS = 200;
const CONCURRENCY = 10;
/** header_timeout is 1 s: a round the gateway has not ended by this is a hang. */
const END_WITHIN_MS = 6000;

const hex = (s: string) => Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!.map((h) => parseInt(h, 16)));
const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

interface Round {
  control: Uint8Array;
  encoder: Uint8Array;
  request: Uint8Array;
}

/**
 * The unmutated round: RFC 9204 B.2's inserts (:authority www.example.com, :path /sample/path)
 * on the encoder stream, and a request section that references both (post-base) after the static
 * :method and :scheme; `post` adds a body on the pooled path.
 */
function seed(post: boolean): Round {
  const control = cat(
    Uint8Array.of(StreamType.CONTROL),
    encodeSettings([[Setting.QPACK_MAX_TABLE_CAPACITY, 4096], [Setting.QPACK_BLOCKED_STREAMS, 16]]),
  );
  const encoder = cat(
    Uint8Array.of(StreamType.QPACK_ENCODER),
    hex("3fbd01 c00f 7777772e6578616d706c652e636f6d c10c 2f73616d706c652f70617468"),
  );
  // RIC 2 (encoded 03), Base 0 (81: sign, delta 1); :method GET (d1) or POST (d4); :scheme https
  // (d7); post-base 0 and 1 (10 11).
  const section = hex(post ? "0381 d4 d7 10 11" : "0381 d1 d7 10 11");
  const request = post
    ? cat(
      encodeFrame(FrameType.HEADERS, section),
      encodeFrame(FrameType.DATA, new TextEncoder().encode("hello")),
    )
    : encodeFrame(FrameType.HEADERS, section);
  return { control, encoder, request };
}

type Outcome = "response" | "stream reset" | "closed" | "hang" | "undecodable response";

type Result = { outcome: Outcome; detail: string };

async function play(port: number, ca: string, r: Round): Promise<Result> {
  const c = await H3Client.connect({ port, ca, noControl: true });
  const closed = c.conn.closed.then((i): Result => ({
    outcome: "closed",
    detail: `${i.local ? "by us" : "by the server"} 0x${i.code.toString(16)} ${i.reason}`,
  }));
  const act = (async (): Promise<Result> => {
    const conn = c.conn;
    const control = await conn.openUni();
    await control.write(r.control);
    const enc = await conn.openUni();
    await enc.write(r.encoder);
    const dec = await conn.openUni();
    await dec.write(Uint8Array.of(StreamType.QPACK_DECODER));
    const s = await conn.openBidi();
    await s.send.write(r.request);
    await s.send.finish();
    try {
      const res = await c.readResponse(s);
      return { outcome: "response", detail: String(res.status) };
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (/could not be decoded/.test(msg)) return { outcome: "undecodable response", detail: msg };
      // A reset stream or a closed connection: which one, the close promise says if it settles.
      return await within(closed, 300, { outcome: "stream reset", detail: msg });
    }
  })().catch(() => closed);
  try {
    return await within(Promise.race([act, closed]), END_WITHIN_MS, { outcome: "hang", detail: "" });
  } finally {
    c.close();
  }
}

Deno.test("h3 wire fuzz: 200 mutated HTTP/3 sessions each end (answer, reset or close), and the gateway serves on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eg-h3fuzz-" });
  const pki = await makeTestPki(dir);
  const origin = await startOrigin("o1");
  const gw = await startGateway(quicGatewayConfig(pki, origin.address, {
    name: "h3",
    listener: 'header_timeout = "1s"\nbody_timeout = "1s"',
    // POSTs (the requests with a body) go to the origin, whatever their path; the rest is answered here.
    routes: `
  [[listeners.routes]]
  path_prefix = "/sample"
  pool = "app"
  [[listeners.routes]]
  respond = { status = 200, body = "ok\\n" }`,
  })).catch(async (e) => {
    await origin.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  });
  try {
    const port = gw.ports.h3;
    // The seeds are valid: both are answered.
    for (const post of [false, true]) {
      const o = await play(port, pki.caPem, seed(post));
      assert.deepEqual(o, { outcome: "response", detail: "200" }, `seed post=${post}`);
    }
    const rand = rng(9114);
    const counts = new Map<string, number>();
    const rounds = Array.from({ length: ROUNDS }, () => {
      const r = seed(rand() < 0.5);
      // Mostly the request, sometimes the encoder stream or the control stream (never its type byte:
      // a stream of another type is a different, already tested, case).
      const which = rand();
      if (which < 0.6) r.request = mutate(r.request, rand, 0);
      else if (which < 0.85) r.encoder = mutate(r.encoder, rand, 1);
      else r.control = mutate(r.control, rand, 1);
      return r;
    });
    await inBatches(ROUNDS, CONCURRENCY, (n) => play(port, pki.caPem, rounds[n]), (n, o) => {
      const r = rounds[n];
      const label = `round ${n}: control ${toHex(r.control)} encoder ${toHex(r.encoder)} request ${
        toHex(r.request)
      }`;
      assert.notEqual(o.outcome, "hang", `${label}: not ended within ${END_WITHIN_MS} ms`);
      assert.notEqual(o.outcome, "undecodable response", `${label}: ${o.detail}`);
      tally(
        counts,
        o.outcome === "closed" ? `closed ${o.detail.split(" ").slice(0, 4).join(" ")}` : o.outcome,
      );
    });
    // Both sides are reached: answers, and connection errors the server chose.
    assert.ok((counts.get("response") ?? 0) > 20, JSON.stringify([...counts]));
    assert.ok(
      [...counts.keys()].some((k) => k.startsWith("closed by the server")),
      JSON.stringify([...counts]),
    );
    const after = await play(port, pki.caPem, seed(true));
    assert.deepEqual(after, { outcome: "response", detail: "200" });
    assert.doesNotMatch(gw.logs(), /unhandled rejection/);
  } finally {
    await gw.stop();
    await origin.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

function toHex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

Deno.test("h3 wire fuzz: 200 mutated backend responses through the HTTP/3 front: every stream ends, cleanly or reset", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eg-h3fuzz-" });
  const pki = await makeTestPki(dir);
  const { responses, hold } = mutatedResponses(ROUNDS, rng(9115));
  const backend = hostileBackend(responses, hold);
  const gw = await startGateway(
    quicGatewayConfig(pki, backend.address, { name: "h3" }).replace(
      /(\[\[pools\]\]\nname = "app")/,
      '$1\nresponse_timeout = "1s"',
    ),
  ).catch(async (e) => {
    await backend.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  });
  /**
   * One GET on its own connection: "end <status>", or how it failed. A body cut short without a
   * content-length closes the connection (H3_INTERNAL_ERROR): Deno cannot reset one stream with
   * a code and a FIN would make the cut body look complete (docs/QUIC.md). A connection of its
   * own keeps that from taking other rounds with it.
   */
  const get = async (n: number): Promise<string> => {
    const c = await H3Client.connect({ port: gw.ports.h3, ca: pki.caPem });
    const got = c.request({ method: "GET", path: `/r/${n}`, authority: "origin" }).then(
      (res) => `end ${res.status}`,
      async (e) => {
        if (/decoded/.test(String(e))) return `undecodable ${e}`;
        const closed = await within(c.closed(), 300, null);
        return closed ? `closed 0x${closed.code.toString(16)} ${closed.reason}` : "reset";
      },
    );
    try {
      return await within(got, END_WITHIN_MS, "open");
    } finally {
      c.close();
    }
  };
  try {
    const ends = new Map<string, number>();
    await inBatches(ROUNDS, CONCURRENCY, get, (n, r) => {
      const label = `round ${n}${hold.has(n) ? " (held open)" : ""}: backend sent ${
        JSON.stringify(String.fromCharCode(...responses[n]))
      }`;
      assert.notEqual(r, "open", `${label}: the stream was left open`);
      assert.doesNotMatch(r, /^undecodable/, label);
      // The only connection close a backend may cause is the documented one.
      if (r.startsWith("closed")) assert.equal(r, "closed 0x102 upstream body truncated", label);
      tally(ends, r);
    });
    for (const k of ["end 200", "end 502", "end 504"]) {
      assert.ok((ends.get(k) ?? 0) > 3, `${k}: ${JSON.stringify([...ends])}`);
    }
    const c = await H3Client.connect({ port: gw.ports.h3, ca: pki.caPem });
    try {
      const clean = await c.request({ method: "GET", path: "/clean", authority: "origin" });
      assert.equal(clean.status, 200);
      assert.equal(new TextDecoder().decode(clean.body), "clean\n");
    } finally {
      c.close();
    }
    assert.doesNotMatch(gw.logs(), /unhandled rejection/);
  } finally {
    await gw.stop();
    await backend.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
