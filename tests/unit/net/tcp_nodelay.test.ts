/**
 * TCP_NODELAY on https listeners (src/net/tcp_nodelay.ts): a real listener bound by
 * BoundListener, a real TLS client, and the accepted socket's option read back with
 * getsockopt. Also: the listener after SIGUSR1-style certificate rotation, and the path without
 * --allow-ffi (nothing set, reported, the listener still serves).
 */

import assert from "node:assert/strict";
import { BoundListener } from "../../../src/net/listener.ts";
import { bindWithNoDelay } from "../../../src/net/tcp_nodelay.ts";
import { Logger } from "../../../src/observability/log.ts";
import { run } from "../../helpers/run.ts";
import { listener, loadToml, makeCerts } from "../config/helpers.ts";

const libc = Deno.dlopen("libc.so.6", {
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
}).symbols;

function sockopt(fd: number, level: number, name: number): number {
  const v = new Int32Array(1), l = new Uint32Array([4]);
  const rc = libc.getsockopt(fd, level, name, new Uint8Array(v.buffer), new Uint8Array(l.buffer));
  return rc === 0 ? v[0] : -1;
}

/** TCP_NODELAY of each accepted (non-listening) socket of this process with local port `port`. */
function acceptedNoDelay(port: number): number[] {
  const out: number[] = [];
  for (let fd = 0; fd < 1024; fd++) {
    const sa = new Uint8Array(128), l = new Uint32Array([128]);
    if (libc.getsockname(fd, sa, new Uint8Array(l.buffer)) !== 0 || sa[0] !== 2) continue; // AF_INET
    if (((sa[2] << 8) | sa[3]) !== port || sockopt(fd, 1, 30 /* SO_ACCEPTCONN */) !== 0) continue;
    out.push(sockopt(fd, 6, /* IPPROTO_TCP */ 1 /* TCP_NODELAY */));
  }
  return out;
}

/** openssl s_client holding one TLS connection to `port` open (its stdin stays open). */
function tlsClient(port: number): Deno.ChildProcess {
  return new Deno.Command("openssl", {
    args: ["s_client", "-connect", `127.0.0.1:${port}`, "-quiet"],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Waits (bounded) until `n` connections have completed their handshake on our side. */
async function handshakes(done: () => number, n: number): Promise<void> {
  for (let i = 0; i < 200 && done() < n; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(done(), n, "TLS handshakes completed");
}

Deno.test("https listener: accepted TLS sockets inherit TCP_NODELAY, also after certificate rotation", async () => {
  const certs = await makeCerts();
  const log = new Logger("error", "json");
  let bound: BoundListener | undefined;
  const accepted: Deno.Conn[] = [];
  let handshaken = 0;
  const clients: Deno.ChildProcess[] = [];
  try {
    const tls = `protocol = "https"\n[listeners.tls]\ncert = "${certs.cert}"\nkey = "${certs.key}"`;
    const loaded = await loadToml(
      listener("", '[[listeners.routes]]\nrespond = { status = 200, body = "ok" }').replace(
        'protocol = "http"\n',
        `${tls}\n`,
      ),
    );
    assert.ok(loaded.snapshot, loaded.message);
    bound = await BoundListener.bind(loaded.snapshot.config.listeners[0], ["http/1.1"]);
    assert.equal(bound.noDelay, "set");
    bound.serve((conn) => {
      accepted.push(conn);
      (conn as Deno.TlsConn).handshake().then(() => handshaken++, () => {});
    }, log);

    clients.push(tlsClient(bound.port));
    await handshakes(() => handshaken, 1);
    assert.deepEqual(acceptedNoDelay(bound.port), [1]);

    await bound.rotateCertificates(log, ["http/1.1"]);
    assert.equal(bound.noDelay, "set");
    clients.push(tlsClient(bound.port));
    await handshakes(() => handshaken, 2);
    // The connection from before the rotation and the one accepted by the new socket.
    assert.deepEqual(acceptedNoDelay(bound.port), [1, 1]);
  } finally {
    for (const c of accepted) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    for (const c of clients) {
      await c.stdin.close().catch(() => {});
      await c.status;
    }
    bound?.close();
    await Deno.remove(certs.dir, { recursive: true });
  }
});

Deno.test("without --allow-ffi: nothing set, 'unavailable' reported, and a plain listener still accepts", async () => {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    const mod = new URL("../../../src/net/tcp_nodelay.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { bindWithNoDelay } from "${mod}";\n` +
        `const { listener, noDelay } = bindWithNoDelay(() => Deno.listen({ hostname: "127.0.0.1", port: 0 }));\n` +
        `const c = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });\n` +
        `const a = await listener.accept();\n` +
        `console.log(noDelay, a.remoteAddr.port === c.localAddr.port);\n` +
        `a.close(); c.close(); listener.close();\n`,
    );
    const deno = Deno.execPath();
    const r = await run(deno, ["run", "--no-prompt", "--allow-net", `--allow-read=${Deno.cwd()}`, script], {
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "unavailable true");
  } finally {
    await Deno.remove(script);
  }
});

Deno.test("bindWithNoDelay: a bind that throws propagates unchanged", () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    assert.throws(
      () =>
        bindWithNoDelay(() =>
          Deno.listen({ hostname: "127.0.0.1", port: (taken.addr as Deno.NetAddr).port })
        ),
      Deno.errors.AddrInUse,
    );
  } finally {
    taken.close();
  }
});

Deno.test("two listeners sharing a port (reusePort, as data-plane workers do): every accepted socket has TCP_NODELAY", async () => {
  const certs = await makeCerts();
  const clients: Deno.Conn[] = [];
  const accepted: Deno.Conn[] = [];
  const listeners: Deno.Listener[] = [];
  try {
    const [cert, key] = [await Deno.readTextFile(certs.cert), await Deno.readTextFile(certs.key)];
    const listen = (port: number) =>
      bindWithNoDelay(() =>
        Deno.listenTls(
          { hostname: "127.0.0.1", port, cert, key, reusePort: true } as
            & Deno.ListenTlsOptions
            & Deno.TlsCertifiedKeyPem,
        )
      );
    const first = listen(0);
    listeners.push(first.listener);
    const port = (first.listener.addr as Deno.NetAddr).port;
    const second = listen(port);
    listeners.push(second.listener);
    assert.deepEqual([first.noDelay, second.noDelay], ["set", "set"]);
    for (const l of listeners) {
      (async () => {
        for await (const c of l) accepted.push(c);
      })().catch(() => {});
    }
    // TCP connections are enough: the option belongs to the accepted socket, before any handshake.
    for (let i = 0; i < 16; i++) clients.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    for (let i = 0; i < 200 && accepted.length < clients.length; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(accepted.length, clients.length);
    assert.deepEqual(acceptedNoDelay(port), clients.map(() => 1));
  } finally {
    for (const c of [...clients, ...accepted]) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    for (const l of listeners) l.close();
    await Deno.remove(certs.dir, { recursive: true });
  }
});
