/**
 * Certificate expiry as the control process reads it (src/security/cert_expiry.ts): checked
 * against openssl's own reading of certificates it made, and for the files it cannot read.
 */

import assert from "node:assert/strict";
import type { ListenerConfig } from "../../../src/config/types.ts";
import {
  certificateExpiries,
  certificateFiles,
  expiryWarnings,
  leafNotAfter,
} from "../../../src/security/cert_expiry.ts";
import { run } from "../../helpers/run.ts";
import { selfSigned } from "../../helpers/self_signed.ts";

async function opensslNotAfter(file: string): Promise<number> {
  const r = await run("openssl", ["x509", "-noout", "-enddate", "-in", file]);
  return Date.parse(/^notAfter=(.+)$/m.exec(r.stdout)![1]);
}

const tlsListener = (name: string, cert: string, sni: string[]) =>
  ({
    name,
    protocol: "https",
    tls: {
      cert,
      key: "",
      tls13_only: false,
      certificates: sni.map((c) => ({ cert: c, key: "", server_names: [] })),
    },
  }) as unknown as ListenerConfig;

Deno.test("cert expiry: the leaf's notAfter, per listener and file; unreadable files are reported, not thrown", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eg-expiry-" });
  try {
    const a = (await selfSigned(dir, "a", { days: 30 })).cert;
    const b = (await selfSigned(dir, "b", { days: 400 })).cert;
    // A chain file (leaf first, then its issuer): the leaf is what expires first for clients.
    const chain = `${dir}/chain.pem`;
    await Deno.writeTextFile(chain, (await Deno.readTextFile(a)) + (await Deno.readTextFile(b)));
    assert.equal(leafNotAfter(await Deno.readTextFile(chain)), await opensslNotAfter(a));
    const days = (leafNotAfter(await Deno.readTextFile(b)) - Date.now()) / 86_400_000;
    assert.ok(days > 399 && days <= 400, `b expires in ${days} days`);

    const garbage = `${dir}/garbage.pem`;
    await Deno.writeTextFile(
      garbage,
      "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    );
    const listeners = [
      tlsListener("web", a, [b, a]), // the default file again as an SNI file: listed once
      { name: "plain", protocol: "http" } as unknown as ListenerConfig,
      tlsListener("broken", garbage, [`${dir}/missing.pem`]),
    ];
    assert.deepEqual(certificateFiles(listeners), [
      { listener: "web", file: a },
      { listener: "web", file: b },
      { listener: "broken", file: garbage },
      { listener: "broken", file: `${dir}/missing.pem` },
    ]);
    const got = await certificateExpiries(certificateFiles(listeners));
    assert.equal(got[0].notAfter, await opensslNotAfter(a));
    assert.equal(got[1].notAfter, await opensslNotAfter(b));
    for (const bad of got.slice(2)) {
      assert.ok(Number.isNaN(bad.notAfter), JSON.stringify(bad));
      assert.ok(bad.error && bad.error.length > 0, JSON.stringify(bad));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cert expiry: warnings for an unreadable file and an expired certificate, none for a valid one", () => {
  const now = Date.parse("2026-12-03T10:00:00Z");
  const entries = [
    { listener: "web", file: "/c/valid.pem", notAfter: now + 1 },
    { listener: "web", file: "/c/expired.pem", notAfter: now },
    { listener: "api", file: "/c/garbage.pem", notAfter: NaN, error: "nom error: Eof" },
  ];
  assert.deepEqual(expiryWarnings(entries, now), [
    {
      msg: "TLS certificate has expired",
      fields: { listener: "web", file: "/c/expired.pem", not_after: "2026-12-03T10:00:00.000Z" },
    },
    {
      msg: "cannot read the expiry of a TLS certificate",
      fields: { listener: "api", file: "/c/garbage.pem", error: "nom error: Eof" },
    },
  ]);
  assert.deepEqual(expiryWarnings(entries.slice(0, 1), now), []);
});
