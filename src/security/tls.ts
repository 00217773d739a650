/**
 * Server certificates for one TLS listener: the default pair plus extra pairs chosen by SNI.
 *
 * Deno.listenTls takes several certificates only through the undocumented listen option
 * `Symbol.for("unstableSniResolver")`; this module is the one place that uses it, and
 * tests/unit/tls_sni.test.ts fails loudly if a Deno upgrade breaks it. Measured here: Deno
 * caches the resolver's answer per server name for the listener's lifetime, so rotation
 * (SIGUSR1) cannot work by changing what the resolver returns; the listener is re-bound
 * instead (see net/listener.ts), with reusePort so no connection is refused meanwhile.
 */

import type { ServerTlsConfig } from "../config/types.ts";

export interface KeyPair {
  cert: string;
  key: string;
}

export class CertificateStore {
  #default: KeyPair = { cert: "", key: "" };
  #exact = new Map<string, KeyPair>();
  #wildcard = new Map<string, KeyPair>();

  constructor(readonly cfg: ServerTlsConfig) {}

  /** Reads every file; throws on an unreadable or empty file, leaving the old pairs in place. */
  async load(): Promise<void> {
    const read = async (p: KeyPair): Promise<KeyPair> => {
      const pair = { cert: await Deno.readTextFile(p.cert), key: await Deno.readTextFile(p.key) };
      if (!pair.cert.includes("-----BEGIN")) throw new Error(`${p.cert}: no PEM certificate found`);
      if (!pair.key.includes("-----BEGIN")) throw new Error(`${p.key}: no PEM private key found`);
      return pair;
    };
    const def = await read(this.cfg);
    const exact = new Map<string, KeyPair>();
    const wildcard = new Map<string, KeyPair>();
    for (const c of this.cfg.certificates) {
      const pair = await read(c);
      for (const name of c.server_names) {
        const n = name.toLowerCase();
        if (n.startsWith("*.")) wildcard.set(n.slice(1), pair);
        else exact.set(n, pair);
      }
    }
    this.#default = def;
    this.#exact = exact;
    this.#wildcard = wildcard;
  }

  /** The pair for an SNI name ("" when the client sent none). */
  resolve(serverName: string): KeyPair {
    if (serverName) {
      const n = serverName.toLowerCase();
      const hit = this.#exact.get(n);
      if (hit) return hit;
      const dot = n.indexOf(".");
      if (dot > 0) {
        const w = this.#wildcard.get(n.slice(dot));
        if (w) return w;
      }
    }
    return this.#default;
  }

  get defaultPair(): KeyPair {
    return this.#default;
  }

  get hasSni(): boolean {
    return this.#exact.size > 0 || this.#wildcard.size > 0;
  }
}

const SNI_RESOLVER = Symbol.for("unstableSniResolver");

/** Deno.listenTls options for a store, with the SNI resolver when there are extra certificates. */
export function tlsListenOptions(
  store: CertificateStore,
  hostname: string,
  port: number,
  alpnProtocols: string[],
): Deno.ListenTlsOptions & Deno.TlsCertifiedKeyPem {
  const def = store.defaultPair;
  const opts: Record<string | symbol, unknown> = {
    hostname,
    port,
    cert: def.cert,
    key: def.key,
    alpnProtocols,
    reusePort: true,
  };
  if (store.hasSni) opts[SNI_RESOLVER] = (serverName: string) => store.resolve(serverName);
  return opts as unknown as Deno.ListenTlsOptions & Deno.TlsCertifiedKeyPem;
}
