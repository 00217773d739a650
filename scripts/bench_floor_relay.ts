/**
 * The floor for an HTTP/1.1 proxy on Deno's sockets (scripts/bench_floor.sh): no parsing, no
 * pool, no headers, no metrics. Each client connection gets its own origin connection and the
 * relay does read → write → read → write per request, which is correct only for a client that
 * sends one small request at a time and an origin whose answer fits one read (wrk GET /small
 * against the bench origin). What it costs per request is what Deno's four socket ops cost;
 * whatever the gateway spends above it is its own. Reads and writes go through the same calls as
 * the gateway's (src/net/raw_socket.ts: Deno's ops without the async wrappers of conn.read()
 * and conn.write()).
 *
 *   deno run --allow-net scripts/bench_floor_relay.ts LISTEN_PORT ORIGIN_PORT
 */

import { rawSocketRid, readSocket, writeSocket } from "../src/net/raw_socket.ts";

const [listenPort, originPort] = Deno.args.map(Number);
const listener = Deno.listen({ hostname: "127.0.0.1", port: listenPort });

async function relay(client: Deno.TcpConn): Promise<void> {
  let origin: Deno.TcpConn | undefined;
  try {
    origin = await Deno.connect({ hostname: "127.0.0.1", port: originPort });
    client.setNoDelay(true);
    origin.setNoDelay(true);
    const up = new Uint8Array(16 * 1024), down = new Uint8Array(16 * 1024);
    const clientRid = rawSocketRid(client), originRid = rawSocketRid(origin);
    for (;;) {
      const n = await readSocket(client, clientRid, up);
      if (!n) break;
      await writeSocket(origin, originRid, up.subarray(0, n));
      const m = await readSocket(origin, originRid, down);
      if (!m) break;
      await writeSocket(client, clientRid, down.subarray(0, m));
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
