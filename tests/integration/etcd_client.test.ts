/**
 * The etcd JSON-gateway client (src/control/etcd_client.ts) against a real etcd: range, put,
 * prefix range, compare-and-swap, leases (grant, keepalive, revoke, expiry), endpoint
 * failover, and the watch stream — events in order, DELETE events, a large value split over
 * many chunks, and the cancel with compact_revision a compacted start revision produces.
 */

import assert from "node:assert/strict";
import { EtcdClient, EtcdUnavailableError, type WatchMessage } from "../../src/control/etcd_client.ts";
import { freePort, startEtcd } from "../helpers/etcd.ts";

async function collect(
  gen: AsyncGenerator<WatchMessage>,
  until: (msgs: WatchMessage[]) => boolean,
  ctl: AbortController,
  timeoutMs = 5000,
): Promise<WatchMessage[]> {
  const msgs: WatchMessage[] = [];
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    for await (const m of gen) {
      msgs.push(m);
      if (until(msgs)) break;
    }
  } catch (e) {
    if (!ctl.signal.aborted) throw e;
  } finally {
    clearTimeout(timer);
  }
  return msgs;
}

Deno.test("etcd client: kv, CAS, leases, failover and watch against a real etcd", async (t) => {
  const etcd = await startEtcd();
  // A dead endpoint first: every call fails over to the live one.
  const client = new EtcdClient({
    endpoints: [`http://127.0.0.1:${freePort()}`, etcd.url],
    requestTimeoutMs: 2000,
  });
  try {
    await t.step("range, put, prefix range, delete", async () => {
      assert.deepEqual((await client.get("/t/a")).modRevision, 0);
      const rev = await client.put("/t/a", "välue ✓");
      const got = await client.get("/t/a");
      assert.equal(got.value, "välue ✓");
      assert.equal(got.modRevision, rev);
      assert.equal(client.endpoint, etcd.url);
      await client.put("/t/b", "2");
      await client.put("/u/c", "3");
      const r = await client.range("/t/", { prefix: true });
      assert.deepEqual(r.kvs.map((kv) => kv.key), ["/t/a", "/t/b"]);
      assert.equal(await client.delete("/t/", { prefix: true }), 2);
      assert.equal((await client.get("/t/a")).value, undefined);
    });

    await t.step("compare-and-swap on mod_revision", async () => {
      const absent = await client.putIfModRevision("/t/cas", "one", 0);
      assert.equal(absent.succeeded, true);
      const cur = (await client.get("/t/cas")).modRevision;
      const stale = await client.putIfModRevision("/t/cas", "two", 0);
      assert.deepEqual([stale.succeeded, stale.currentModRevision], [false, cur]);
      assert.equal((await client.get("/t/cas")).value, "one");
      const ok = await client.putIfModRevision("/t/cas", "two", cur);
      assert.equal(ok.succeeded, true);
      assert.equal((await client.get("/t/cas")).value, "two");
    });

    await t.step(
      "leases: keys vanish on revoke and on expiry; keepalive reports 0 for a gone lease",
      async () => {
        const lease = await client.leaseGrant(2);
        assert.match(lease.id, /^\d+$/);
        assert.equal(lease.ttl, 2);
        await client.put("/t/leased", "x", { lease: lease.id });
        assert.equal((await client.range("/t/leased")).kvs[0].lease, lease.id);
        assert.ok((await client.leaseKeepAlive(lease.id)) > 0);
        await client.leaseRevoke(lease.id);
        assert.equal((await client.get("/t/leased")).value, undefined);
        assert.equal(await client.leaseKeepAlive(lease.id), 0);
        await client.leaseRevoke(lease.id); // already gone: not an error
        const short = await client.leaseGrant(2);
        await client.put("/t/expiring", "x", { lease: short.id });
        const deadline = Date.now() + 6000;
        while ((await client.get("/t/expiring")).value !== undefined) {
          assert.ok(Date.now() < deadline, "leased key outlived its TTL");
          await new Promise((r) => setTimeout(r, 100));
        }
      },
    );

    await t.step("watch: PUT and DELETE events in order, a 1 MiB value intact", async () => {
      const start = (await client.range("/t/w")).revision + 1;
      const ctl = new AbortController();
      const big = "x".repeat(1024 * 1024);
      const writer = (async () => {
        await new Promise((r) => setTimeout(r, 100));
        await client.put("/t/w", "first");
        await client.put("/t/w", big);
        await client.delete("/t/w");
      })();
      const msgs = await collect(
        client.watch("/t/w", start, ctl.signal),
        (m) => m.flatMap((x) => x.events).length >= 3,
        ctl,
      );
      await writer;
      ctl.abort();
      assert.equal(msgs[0].created, true);
      const events = msgs.flatMap((m) => m.events);
      assert.deepEqual(events.map((e) => e.type), ["PUT", "PUT", "DELETE"]);
      assert.equal(events[0].kv.value, "first");
      assert.equal(events[1].kv.value.length, big.length);
      assert.ok(events[0].kv.modRevision < events[1].kv.modRevision);
    });

    await t.step("watch from a compacted revision is canceled with compact_revision", async () => {
      await client.put("/t/c", "1");
      const rev = await client.put("/t/c", "2");
      await client.call("kv/compaction", { revision: String(rev) });
      const ctl = new AbortController();
      const msgs = await collect(client.watch("/t/c", 1, ctl.signal), (m) => m.some((x) => x.canceled), ctl);
      ctl.abort();
      const canceled = msgs.find((m) => m.canceled);
      assert.ok(canceled, JSON.stringify(msgs));
      assert.equal(canceled.compactRevision, rev);
    });

    await t.step("no endpoint up: EtcdUnavailableError naming each endpoint", async () => {
      await etcd.kill();
      await assert.rejects(client.get("/t/a"), (e) => {
        assert.ok(e instanceof EtcdUnavailableError);
        assert.match(
          e.message,
          /no etcd endpoint answered \(http:\/\/127\.0\.0\.1:\d+: .*; http:\/\/127\.0\.0\.1:\d+: /,
        );
        return true;
      });
    });
  } finally {
    client.close();
    await etcd.stop();
  }
});
