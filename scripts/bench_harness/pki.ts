/**
 * TLS material for the benchmark: a throwaway CA and a leaf for 127.0.0.1/localhost signed by
 * it (EC P-256, 2 days). Every TLS front (gateway, nginx, HAProxy, Caddy, nghttpx) serves the
 * leaf. A CA + leaf rather than one self-signed certificate because Deno's QUIC client (the
 * HTTP/3 load client, h3load.ts) verifies the chain and refuses a self-signed certificate used
 * as its own root (rustls: CaUsedAsEndEntity); wrk, h2load and curl do not verify at all.
 */

import { runCmd } from "./procs.ts";

export interface Pki {
  /** The CA certificate (PEM file), the only thing h3load trusts. */
  ca: string;
  /** Leaf certificate and its key (mode 600). */
  cert: string;
  key: string;
  /** Leaf certificate + key in one file (HAProxy's crt). */
  pem: string;
}

async function openssl(args: string[]): Promise<void> {
  const r = await runCmd("openssl", args, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr.trim()}`);
}

export async function makePki(dir: string): Promise<Pki> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const ca = `${dir}/ca.pem`;
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    `${dir}/ca.key`,
    "-out",
    ca,
    "-days",
    "2",
    "-subj",
    "/CN=bench-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  await openssl(["req", ...ec, "-keyout", key, "-out", `${dir}/leaf.csr`, "-subj", "/CN=127.0.0.1"]);
  await Deno.writeTextFile(
    `${dir}/leaf.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    `${dir}/leaf.csr`,
    "-CA",
    ca,
    "-CAkey",
    `${dir}/ca.key`,
    "-CAcreateserial",
    "-out",
    cert,
    "-days",
    "2",
    "-extfile",
    `${dir}/leaf.ext`,
  ]);
  await Deno.chmod(key, 0o600);
  await Deno.chmod(`${dir}/ca.key`, 0o600);
  const pem = `${dir}/haproxy.pem`;
  await Deno.writeTextFile(pem, (await Deno.readTextFile(cert)) + (await Deno.readTextFile(key)));
  await Deno.chmod(pem, 0o600);
  return { ca, cert, key, pem };
}
