/** What a reload may change in a quic listener's raw_proxy (src/config/diff.ts). */
import assert from "node:assert/strict";
import { liveApplicable, restartRequiredChanges } from "../../../src/config/diff.ts";
import type { GatewayConfig } from "../../../src/config/types.ts";
import { loadToml, makeCerts } from "./helpers.ts";

Deno.test("raw_proxy: backend and timeouts apply live; presence, alpn and idle_timeout need a restart", async () => {
  const certs = await makeCerts();
  const load = async (raw: string): Promise<GatewayConfig> => {
    const r = await loadToml(
      `[[listeners]]\nname = "q"\nbind = "127.0.0.1:0"\nprotocol = "quic"\n` +
        `tls = { cert = "${certs.cert}", key = "${certs.key}" }\n${raw}`,
    );
    assert.deepEqual(r.errors, []);
    return r.snapshot!.config;
  };
  try {
    const live = await load('[listeners.raw_proxy]\nbackend = "127.0.0.1:4434"\n');
    const moved = await load('[listeners.raw_proxy]\nbackend = "127.0.0.1:5555"\nconnect_timeout = "1s"\n');
    assert.deepEqual(restartRequiredChanges(live, moved), []);
    assert.equal(liveApplicable(live, moved).listeners[0].raw_proxy?.backend, "127.0.0.1:5555");
    assert.equal(liveApplicable(live, moved).listeners[0].raw_proxy?.connect_timeout, 1000);

    const alpn = await load(
      '[listeners.raw_proxy]\nbackend = "127.0.0.1:4434"\nalpn = ["doq"]\nidle_timeout = "5s"\n',
    );
    assert.equal(restartRequiredChanges(live, alpn).length, 1);
    const kept = liveApplicable(live, alpn).listeners[0].raw_proxy!;
    assert.deepEqual([kept.alpn, kept.idle_timeout], [["h3"], 60_000]);

    const gone = await load("[[listeners.routes]]\nrespond = { status = 200 }\n");
    assert.match(restartRequiredChanges(live, gone).join(), /raw_proxy added, removed/);
    assert.equal(liveApplicable(live, gone).listeners[0].raw_proxy?.backend, "127.0.0.1:4434");
  } finally {
    await Deno.remove(certs.dir, { recursive: true });
  }
});
