/**
 * The smallest userspace UDP relay Deno can run (bench comparison for the XDP path): one
 * Deno.listenDatagram socket, each datagram forwarded round-robin to the backends from the
 * same socket, no session table, no replies. It is an upper bound for any TS relay on this
 * machine, which makes the XDP-vs-userspace ratio conservative. It does what a fast TS relay
 * has to: one receive buffer per loop, reused for every datagram, each send awaited before
 * the buffer is reused, four receives in flight. A fresh 64 KiB buffer per receive (what
 * `receive()` without a buffer and `for await (… of sock)` allocate: bufSize is 65507 in Deno
 * 2.9) costs ~13 µs per datagram here, twice all the rest (a fresh 64- or 2048-byte
 * buffer costs next to nothing).
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
async function relay(): Promise<void> {
  const buf = new Uint8Array(65535);
  for (;;) {
    const [data] = await sock.receive(buf);
    await sock.send(data, backends[n++ % backends.length]);
  }
}
await Promise.all([relay(), relay(), relay(), relay()]);
