/**
 * When the certificates the listeners serve expire: the leaf (first) certificate of every PEM
 * file an `https` or `quic` listener names, default and SNI alike, read from disk and parsed with
 * node:crypto's X509Certificate. The control process exports the result as one gauge per
 * listener and file (Unix time of notAfter), so an alert can fire weeks before a certificate
 * lapses, as operators do with Envoy's days_until_first_cert_expiring or an exporter in front of
 * nginx. Read by the control process rather than the workers, whose gauges add up across
 * workers (metrics.ts mergeCollected): a timestamp must not be summed.
 */

import { X509Certificate } from "node:crypto";
import type { ListenerConfig } from "../config/types.ts";

export interface CertificateExpiry {
  listener: string;
  /** The certificate file's path, as the config names it. */
  file: string;
  /** notAfter in milliseconds since the epoch; NaN when the file could not be read or parsed. */
  notAfter: number;
  /** Why notAfter is NaN. */
  error?: string;
}

/** Every certificate file of the listeners with TLS, each listed once per listener. */
export function certificateFiles(
  listeners: readonly ListenerConfig[],
): Array<{ listener: string; file: string }> {
  const out: Array<{ listener: string; file: string }> = [];
  for (const l of listeners) {
    if (!l.tls) continue;
    const files = new Set([l.tls.cert, ...l.tls.certificates.map((c) => c.cert)]);
    for (const file of files) out.push({ listener: l.name, file });
  }
  return out;
}

/** notAfter of the first certificate in a PEM text; throws on anything else. */
export function leafNotAfter(pem: string): number {
  const cert = new X509Certificate(pem);
  const t = Date.parse(cert.validTo);
  if (Number.isNaN(t)) throw new Error(`unreadable notAfter ${JSON.stringify(cert.validTo)}`);
  return t;
}

/** Reads and parses each file; a failure is reported in the entry, never thrown. */
export async function certificateExpiries(
  files: Array<{ listener: string; file: string }>,
): Promise<CertificateExpiry[]> {
  const out: CertificateExpiry[] = [];
  for (const f of files) {
    try {
      out.push({ ...f, notAfter: leafNotAfter(await Deno.readTextFile(f.file)) });
    } catch (e) {
      out.push({ ...f, notAfter: NaN, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return out;
}

/** A warning for the log: a file whose expiry cannot be read, or a certificate already expired. */
export interface ExpiryWarning {
  msg: string;
  fields: Record<string, string>;
}

/**
 * What is worth a warning among `entries` at `now` (ms since the epoch). An expired certificate
 * is still served (as nginx and HAProxy do: refusing it would take the listener down instead),
 * so the log and the gauge are how an operator learns of it.
 */
export function expiryWarnings(entries: readonly CertificateExpiry[], now: number): ExpiryWarning[] {
  const out: ExpiryWarning[] = [];
  for (const e of entries) {
    const where = { listener: e.listener, file: e.file };
    if (Number.isNaN(e.notAfter)) {
      out.push({
        msg: "cannot read the expiry of a TLS certificate",
        fields: { ...where, error: e.error ?? "" },
      });
    } else if (e.notAfter <= now) {
      out.push({
        msg: "TLS certificate has expired",
        fields: { ...where, not_after: new Date(e.notAfter).toISOString() },
      });
    }
  }
  return out;
}
