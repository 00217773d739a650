/**
 * The smallest userspace UDP relay Deno can run (bench comparison for the XDP path): one
 * Deno.listenDatagram socket, each datagram forwarded round-robin to the backends from the
 * same socket, no session table, no replies. It is an upper bound for any TS relay on this
 * machine, which makes the XDP-vs-userspace ratio conservative.
 *
 *   deno run --allow-net --unstable-net bpf/tools/udp_relay.ts <port> <ip:port>...
 */

const port = Number(Deno.args[0]);
const backends = Deno.args.slice(1).map((hp) => {
  const i = hp.lastIndexOf(":");
  return { transport: "udp" as const, hostname: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
});
const sock = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port });
console.log(JSON.stringify({ ready: true }));
let n = 0;
for await (const [data] of sock) {
  await sock.send(data, backends[n++ % backends.length]);
}
