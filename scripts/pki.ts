/**
 * Throwaway TLS material for tests and benchmarks: a CA and a leaf for localhost / 127.0.0.1
 * signed by it (EC P-256, valid 2 days), made with openssl. A CA + leaf rather than one
 * self-signed certificate because Deno's QUIC client verifies the chain and refuses a
 * self-signed certificate used as its own root (rustls: CaUsedAsEndEntity).
 */

export interface TestPki {
  /** CA certificate (PEM file) and its text. */
  ca: string;
  caPem: string;
  /** Leaf certificate and key (mode 600). */
  cert: string;
  key: string;
  /** Leaf certificate + key in one file (HAProxy's `crt`), mode 600. */
  pem: string;
}

async function openssl(args: string[]): Promise<void> {
  const child = new Deno.Command("openssl", { args, stdout: "null", stderr: "piped", stdin: "null" }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, 30_000);
  const out = await child.output();
  clearTimeout(timer);
  if (out.code !== 0) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr).trim()}`);
}

export async function makeTestPki(dir: string, caName = "expressgateway-test-ca"): Promise<TestPki> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const ca = `${dir}/ca.pem`, caKey = `${dir}/ca.key`;
  const cert = `${dir}/leaf.pem`, key = `${dir}/leaf.key`;
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    caKey,
    "-out",
    ca,
    "-days",
    "2",
    "-subj",
    `/CN=${caName}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  await openssl(["req", ...ec, "-keyout", key, "-out", `${dir}/leaf.csr`, "-subj", "/CN=localhost"]);
  await Deno.writeTextFile(
    `${dir}/leaf.ext`,
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    `${dir}/leaf.csr`,
    "-CA",
    ca,
    "-CAkey",
    caKey,
    "-CAcreateserial",
    "-out",
    cert,
    "-days",
    "2",
    "-extfile",
    `${dir}/leaf.ext`,
  ]);
  await Deno.chmod(key, 0o600);
  await Deno.chmod(caKey, 0o600);
  const pem = `${dir}/leaf+key.pem`;
  await Deno.writeTextFile(pem, (await Deno.readTextFile(cert)) + (await Deno.readTextFile(key)));
  await Deno.chmod(pem, 0o600);
  return { ca, caPem: await Deno.readTextFile(ca), cert, key, pem };
}
