// Test peer for the XDP tests and benchmark, run by node inside a network namespace.
//
//   node xdp_peer.mjs server <name> <port>   HTTP origin + UDP echo on <port>
//   node xdp_peer.mjs client                 drives UDP flows and a long-lived TCP connection
//
// Both read JSON-line commands on stdin and answer one JSON line each on stdout.
// server: {"op":"stats"} → {connections, requests, datagrams}
//   GET / answers "<name> <connection id>"; a datagram is echoed as "<name>|<payload>".
// client: {"op":"udp","target","port","flows","perFlow","timeoutMs"}
//           → {sent, received, flows:[{localPort, replies, from:[addr:port…], backends:[…]}]}
//         {"op":"open","target","port"} → {localPort} (keep-alive TCP connection)
//         {"op":"req"} → {body} (one HTTP request on that connection) or {error}
//         {"op":"closeconn"} → {}
import { createServer } from "node:http";
import { createSocket } from "node:dgram";
import { connect } from "node:net";
import { createInterface } from "node:readline";

const [mode, name, portArg] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const commands = createInterface({ input: process.stdin });
process.on("SIGTERM", () => process.exit(0));

if (mode === "server") {
  const port = Number(portArg);
  const stats = { connections: 0, requests: 0, datagrams: 0 };
  let nextConn = 0;
  const http = createServer((req, res) => {
    stats.requests++;
    req.resume();
    req.on("end", () => res.end(`${name} ${req.socket.egId}\n`));
  });
  http.keepAliveTimeout = 60_000;
  http.on("connection", (s) => {
    stats.connections++;
    s.egId = ++nextConn;
  });
  const udp = createSocket("udp4");
  udp.on("message", (msg, rinfo) => {
    stats.datagrams++;
    udp.send(Buffer.concat([Buffer.from(`${name}|`), msg]), rinfo.port, rinfo.address);
  });
  let ready = 0;
  const up = () => ++ready === 2 && out({ ready: true });
  http.listen(port, "0.0.0.0", up);
  udp.bind(port, "0.0.0.0", up);
  commands.on("line", (line) => {
    const c = JSON.parse(line);
    if (c.op === "stats") out(stats);
  });
  commands.on("close", () => process.exit(0));
} else if (mode === "client") {
  let conn = null;
  let pending = null;
  let buffered = "";
  const udpRun = async (c) => {
    const socks = [];
    for (let i = 0; i < c.flows; i++) {
      const s = createSocket("udp4");
      await new Promise((r) => s.bind(0, "0.0.0.0", r));
      const flow = { localPort: s.address().port, replies: 0, from: [], backends: [] };
      s.on("message", (msg, rinfo) => {
        flow.replies++;
        const from = `${rinfo.address}:${rinfo.port}`;
        if (!flow.from.includes(from)) flow.from.push(from);
        const be = msg.toString().split("|")[0];
        if (!flow.backends.includes(be)) flow.backends.push(be);
      });
      socks.push({ s, flow });
    }
    let sent = 0;
    for (let k = 0; k < c.perFlow; k++) {
      for (const { s } of socks) {
        s.send(`ping ${k}`, c.port, c.target);
        sent++;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    const deadline = Date.now() + (c.timeoutMs ?? 2000);
    const received = () => socks.reduce((n, x) => n + x.flow.replies, 0);
    while (received() < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const { s } of socks) s.close();
    return { sent, received: received(), flows: socks.map((x) => x.flow) };
  };
  commands.on("line", async (line) => {
    const c = JSON.parse(line);
    try {
      if (c.op === "udp") out(await udpRun(c));
      else if (c.op === "open") {
        conn = connect({ host: c.target, port: c.port });
        conn.setEncoding("utf8");
        conn.on("data", (d) => {
          buffered += d;
          const end = buffered.indexOf("\r\n\r\n");
          if (end < 0 || !pending) return;
          const m = /content-length: (\d+)/i.exec(buffered.slice(0, end));
          const len = m ? Number(m[1]) : 0;
          if (buffered.length < end + 4 + len) return;
          const body = buffered.slice(end + 4, end + 4 + len);
          buffered = buffered.slice(end + 4 + len);
          const p = pending;
          pending = null;
          p({ body: body.trim() });
        });
        conn.on("error", (e) => pending && (pending({ error: e.message }), pending = null));
        conn.on("close", () => pending && (pending({ error: "closed" }), pending = null));
        let connected = false;
        conn.once("error", (e) => !connected && out({ error: e.message }));
        conn.once("connect", () => {
          connected = true;
          out({ localPort: conn.localPort });
        });
      } else if (c.op === "req") {
        const r = await new Promise((resolve) => {
          pending = resolve;
          conn.write("GET / HTTP/1.1\r\nHost: vip\r\n\r\n");
          setTimeout(() => pending === resolve && (pending = null, resolve({ error: "timeout" })), 3000);
        });
        out(r);
      } else if (c.op === "closeconn") {
        conn?.destroy();
        out({});
      }
    } catch (e) {
      out({ error: String(e) });
    }
  });
  commands.on("close", () => process.exit(0));
} else {
  console.error("usage: xdp_peer.mjs server <name> <port> | client");
  process.exit(2);
}
