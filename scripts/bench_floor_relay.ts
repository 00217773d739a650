/**
 * The floor for an HTTP/1.1 proxy on Deno's sockets (scripts/bench_floor.sh): no parsing, no
 * pool, no headers, no metrics. Each client connection gets its own origin connection and the
 * relay does read → write → read → write per request, which is correct only for a client that
 * sends one small request at a time and an origin whose answer fits one read (wrk GET /small
 * against the bench origin). What it costs per request is what Deno's four socket ops cost;
 * whatever the gateway spends above it is its own. Reads go through the same call as the
 * gateway's (src/net/socket_read.ts: Deno's read op without the async wrapper of conn.read()).
 *
 *   deno run --allow-net scripts/bench_floor_relay.ts LISTEN_PORT ORIGIN_PORT
 */

import { rawReadRid, readSocket } from "../src/net/socket_read.ts";

const [listenPort, originPort] = Deno.args.map(Number);
const listener = Deno.listen({ hostname: "127.0.0.1", port: listenPort });

async function relay(client: Deno.TcpConn): Promise<void> {
  let origin: Deno.TcpConn | undefined;
  try {
    origin = await Deno.connect({ hostname: "127.0.0.1", port: originPort });
    client.setNoDelay(true);
    origin.setNoDelay(true);
    const up = new Uint8Array(16 * 1024), down = new Uint8Array(16 * 1024);
    const clientRid = rawReadRid(client), originRid = rawReadRid(origin);
    for (;;) {
      const n = await readSocket(client, clientRid, up);
      if (!n) break;
      await origin.write(up.subarray(0, n));
      const m = await readSocket(origin, originRid, down);
      if (!m) break;
      await client.write(down.subarray(0, m));
    }
  } catch { /* a reset ends this pair only */ }
  try {
    client.close();
  } catch { /* closed */ }
  try {
    origin?.close();
  } catch { /* closed */ }
}

for await (const c of listener) relay(c);
