/**
 * Caddy as an independent HTTP/1.1 + HTTP/2 + HTTP/3 server for tests: `https://localhost:PORT`
 * reverse-proxying to an HTTP/1.1 origin, with the test PKI's certificate. Returns once Caddy
 * answers over HTTP/3 (bounded wait).
 */

import { freeTcpUdpPort, stopChild } from "./common.ts";
import { H3Client } from "./h3_client.ts";

export interface CaddyH3 {
  port: number;
  stop(): Promise<void>;
}

export async function startCaddyH3(
  dir: string,
  pki: { cert: string; key: string; caPem: string },
  upstream: string,
): Promise<CaddyH3> {
  const port = freeTcpUdpPort();
  await Deno.writeTextFile(
    `${dir}/Caddyfile`,
    `{
  admin off
  auto_https off
  servers {
    protocols h1 h2 h3
  }
}
https://localhost:${port} {
  tls ${pki.cert} ${pki.key}
  reverse_proxy ${upstream}
}
`,
  );
  const child = new Deno.Command("caddy", {
    args: ["run", "--config", `${dir}/Caddyfile`, "--adapter", "caddyfile"],
    env: { XDG_DATA_HOME: `${dir}/caddy-data`, XDG_CONFIG_HOME: `${dir}/caddy-config` },
    stdout: "null",
    stderr: "null",
    stdin: "null",
  }).spawn();
  const caddy = { port, stop: () => stopChild(child) };
  try {
    await waitForH3(port, pki.caPem, "/bytes/1");
  } catch (e) {
    await caddy.stop();
    throw e;
  }
  return caddy;
}

/** Waits until an HTTP/3 server on `port` answers `path` (10 s at most). */
export async function waitForH3(port: number, ca: string, path: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const c = await H3Client.connect({ port, ca });
      try {
        const r = await c.request({ path, discardBody: true });
        if (r.status > 0) return;
      } finally {
        c.close();
      }
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`no HTTP/3 server on ${port}: ${e}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
