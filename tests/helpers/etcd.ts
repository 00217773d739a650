/**
 * A real etcd (Debian etcd-server, /usr/bin/etcd) for tests: one member on loopback with free
 * client and peer ports and a temp data dir. kill() is SIGKILL (a crash); restart() starts it
 * again on the same data dir and ports, as an operator's restart would. stop() ends it and
 * removes the data dir; call it in `finally`. With `tls`, clients must use https:// and
 * present a certificate signed by the given CA (--client-cert-auth); makeEtcdPki() makes one.
 */

import { run } from "./run.ts";

export interface EtcdTlsFiles {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export interface EtcdProcess {
  url: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  /** SIGKILL and wait for exit (data dir kept). */
  kill(): Promise<void>;
  /** Start again on the same data dir and ports; resolves when it serves requests. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  logs(): string;
}

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export async function startEtcd(opts: { tls?: EtcdTlsFiles } = {}): Promise<EtcdProcess> {
  const dataDir = await Deno.makeTempDir({ prefix: "eg-etcd-" });
  const clientPort = freePort();
  const peerPort = freePort();
  const tls = opts.tls;
  const url = `${tls ? "https" : "http"}://127.0.0.1:${clientPort}`;
  const tlsArgs = tls
    ? [
      "--cert-file",
      tls.serverCert,
      "--key-file",
      tls.serverKey,
      "--client-cert-auth",
      "--trusted-ca-file",
      tls.ca,
    ]
    : [];
  const probeClient = tls
    ? Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(tls.ca)],
      cert: await Deno.readTextFile(tls.clientCert),
      key: await Deno.readTextFile(tls.clientKey),
    })
    : undefined;
  const peer = `http://127.0.0.1:${peerPort}`;
  let child: Deno.ChildProcess | undefined;
  let text = "";
  let pumps: Promise<unknown> = Promise.resolve();

  const spawn = async () => {
    child = new Deno.Command("/usr/bin/etcd", {
      args: [
        "--name",
        "default",
        "--data-dir",
        `${dataDir}/data`,
        "--listen-client-urls",
        url,
        "--advertise-client-urls",
        url,
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        `default=${peer}`,
        ...tlsArgs,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (s: ReadableStream<Uint8Array>) => {
      const dec = new TextDecoder();
      for await (const chunk of s) {
        text += dec.decode(chunk, { stream: true });
        if (text.length > 1024 * 1024) text = text.slice(-256 * 1024);
      }
    };
    pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const res = await fetch(`${url}/v3/kv/range`, {
          method: "POST",
          body: JSON.stringify({ key: btoa("/") }),
          signal: AbortSignal.timeout(1000),
          client: probeClient,
        });
        await res.body?.cancel();
        if (res.ok) return;
      } catch { /* not up yet */ }
      if (Date.now() > deadline) throw new Error(`etcd did not start:\n${text.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const kill = async () => {
    if (!child) return;
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await pumps;
    child = undefined;
  };

  try {
    await spawn();
  } catch (e) {
    // Never leave a half-started etcd or its data dir behind.
    await kill();
    probeClient?.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    throw e;
  }
  return {
    url,
    clientPort,
    peerPort,
    dataDir,
    kill,
    restart: spawn,
    stop: async () => {
      await kill();
      probeClient?.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
    logs: () => text,
  };
}

/** A CA, an etcd server certificate for 127.0.0.1 and a client certificate, in `dir` (EC P-256). */
export async function makeEtcdPki(dir: string): Promise<EtcdTlsFiles> {
  const openssl = async (args: string[]) => {
    const r = await run("openssl", args, { timeoutMs: 20_000 });
    if (r.code !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    `${dir}/ca.key`,
    "-out",
    `${dir}/ca.pem`,
    "-days",
    "2",
    "-subj",
    "/CN=etcd-test-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  const leaf = async (name: string, ext: string) => {
    await openssl([
      "req",
      ...ec,
      "-keyout",
      `${dir}/${name}.key`,
      "-out",
      `${dir}/${name}.csr`,
      "-subj",
      `/CN=${name}`,
    ]);
    await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
    await openssl([
      "x509",
      "-req",
      "-in",
      `${dir}/${name}.csr`,
      "-CA",
      `${dir}/ca.pem`,
      "-CAkey",
      `${dir}/ca.key`,
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      `${dir}/${name}.ext`,
      "-out",
      `${dir}/${name}.pem`,
    ]);
    await Deno.chmod(`${dir}/${name}.key`, 0o600);
  };
  // etcd 3.4's JSON gateway dials etcd's own gRPC port with the server certificate, so with
  // --client-cert-auth that certificate must be good for client auth too.
  await leaf(
    "server",
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
  );
  await leaf("client", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
  return {
    ca: `${dir}/ca.pem`,
    serverCert: `${dir}/server.pem`,
    serverKey: `${dir}/server.key`,
    clientCert: `${dir}/client.pem`,
    clientKey: `${dir}/client.key`,
  };
}
