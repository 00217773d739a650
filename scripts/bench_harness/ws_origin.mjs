// The WebSocket origin of the benchmark's WebSocket scenario: npm `ws` (a real RFC 6455 server,
// frames parsed and validated) on node, listening on 127.0.0.1:PORT, echoing every message
// back as it came (text as text, binary as binary). No permessage-deflate.
//   node scripts/bench_harness/ws_origin.mjs PORT
// Prints {"port":N} once listening.
import { createRequire } from "node:module";

// require(), not import: `deno check scripts/` reads this file and has no import map for npm packages.
const require = createRequire(import.meta.url);
const { WebSocketServer } = require("ws");

const port = Number(process.argv[2] ?? "0");
const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false, backlog: 4096 });
wss.on("connection", (ws) => {
  ws.on("error", () => {});
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on("listening", () => console.log(JSON.stringify({ port: wss.address().port })));
wss.on("error", (e) => {
  console.error(String(e));
  process.exit(1);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
