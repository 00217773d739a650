/**
 * The side-by-side benchmark: one nginx origin, four proxies in front of it (this gateway,
 * nginx, HAProxy, Caddy) with equivalent settings, every scenario run A B C D A B C D … so
 * each round's numbers share the same machine state, ratios computed round by round. Started
 * by the scripts/bench wrapper (which installs what is missing and raises the fd limit):
 *
 *   scripts/bench [--smoke | --full] [--out FILE] [--rounds N] [--seconds S] [--only IDS]
 *                 [--load-cpus L] [--proxy-cpus P] [--origin-cpus O] [--no-pin] [--workers N]
 *                 [--balancer]
 *
 * Everything it starts is stopped in a finally block and on SIGINT/SIGTERM; every pid is also
 * written to $BENCH_PIDFILE so the wrapper can kill leftovers if this process dies.
 */

import { runBalancerBench } from "../bench_balancer.ts";
import { runScenario } from "./cells.ts";
import { ONE_MIB, type Setup, WRK_LUA } from "./configs.ts";
import { emptyRow, idleConnectionRows, streamRows } from "./memory.ts";
import { type Options, parseOptions, selectScenarios, USAGE } from "./options.ts";
import { makeTestPki } from "../pki.ts";
import {
  type Ctx,
  exitedReason,
  type Proxy,
  startCaddy,
  startGateway,
  startHaproxy,
  startNghttpx,
  startNginx,
  startOrigin,
} from "./proxies.ts";
import { abort, freePorts, log, refreshTree, rssBytes, runCmd, sleep, stopAll } from "./procs.ts";
import { fmt, type MemoryRow, type ScenarioResult, splice } from "./report.ts";
import { loadavg, render } from "./render.ts";

const MIB = 1024 * 1024;

/**
 * Reads a file once so its pages are in the page cache. The first read of a fresh sparse file
 * makes the kernel allocate every zero page (measured here: 2.8 s for 1 GiB through the origin,
 * against 0.4 s for later reads), and that cost would fall on whichever proxy streams first.
 */
async function warmPageCache(path: string): Promise<void> {
  const f = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(MIB);
    while ((await f.read(buf)) !== null) { /* discard */ }
  } finally {
    f.close();
  }
}

async function prepare(dir: string, opts: Options): Promise<Setup> {
  await Deno.mkdir(`${dir}/www`, { recursive: true });
  await Deno.chmod(dir, 0o755);
  const body = new Uint8Array(ONE_MIB);
  for (let off = 0; off < body.length; off += 65536) crypto.getRandomValues(body.subarray(off, off + 65536));
  await Deno.writeFile(`${dir}/www/1m.bin`, body);
  await Deno.writeFile(`${dir}/post.bin`, body);
  await Deno.writeTextFile(`${dir}/www/ok.txt`, "ok\n");
  // A sparse file: the origin sends zeros from the page cache, nothing touches the disk.
  const f = await Deno.open(`${dir}/www/stream.bin`, { create: true, write: true });
  await f.truncate(opts.streamBytes);
  f.close();
  await warmPageCache(`${dir}/www/stream.bin`);
  await Deno.writeTextFile(`${dir}/wrk.lua`, WRK_LUA);
  // A CA and a leaf signed by it (scripts/pki.ts): Deno's QUIC client (h3load) verifies the chain.
  const { ca, cert, key, pem } = await makeTestPki(dir, "bench-ca");
  const pki = { ca, cert, key, pem };
  const [originPort, grpcOriginPort, wsOriginPort] = freePorts(3);
  return { dir, originPort, grpcOriginPort, wsOriginPort, workers: opts.workers, ...pki };
}

async function pinSelf(cpus: string | undefined): Promise<void> {
  if (!cpus) return;
  // -a: every thread of this process (V8 and tokio threads too), so the harness stays off the proxy core.
  await runCmd("taskset", ["-a", "-p", "-c", cpus, String(Deno.pid)]).catch(() => {});
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    const parsed = parseOptions(Deno.args);
    if (parsed === "help") {
      console.log(USAGE);
      return 0;
    }
    opts = parsed as Options;
  } catch (e) {
    console.error(`scripts/bench: ${e instanceof Error ? e.message : e}\n\n${USAGE}`);
    return 2;
  }
  const wanted = (id: string) => !opts.only || opts.only.has(id);
  // --only names scenarios explicitly, full-set ones included.
  const scenarios = selectScenarios(opts);
  const command = ["scripts/bench", ...Deno.args].join(" ");
  const startedAt = new Date();
  const loadStart = await loadavg();
  await pinSelf(opts.loadCpus);

  // The wrapper's work dir (removed by it even if this process is killed), else a fresh one.
  const parent = Deno.env.get("BENCH_WORKDIR");
  const dir = await Deno.makeTempDir({ prefix: "eg-bench-", ...(parent ? { dir: parent } : {}) });
  // One teardown, awaited by both the signal handler and main's finally.
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    cleaning ??= (async () => {
      await stopAll();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    })();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => {
      log(`${sig}: stopping everything`);
      abort();
      cleanup().finally(() => Deno.exit(130));
    });
  }

  try {
    const setup = await prepare(dir, opts);
    const origin = await startOrigin(opts, setup);
    const ctx: Ctx = { opts, setup, lua: `${dir}/wrk.lua`, bodyFile: `${dir}/post.bin`, origin };
    log(`temp dir ${dir}; origin on 127.0.0.1:${setup.originPort}`);
    const proxies: Proxy[] = [];
    const failures: string[] = [];
    for (
      const [name, start] of [["gateway", startGateway], ["nginx", startNginx], ["haproxy", startHaproxy], [
        "caddy",
        startCaddy,
      ], ["nghttpx", startNghttpx]] as const
    ) {
      try {
        const p = await start(ctx);
        proxies.push(p);
        log(
          `${name}: pid ${p.proc.pid}, ports ${JSON.stringify(p.ports)}${
            Object.keys(p.na).length ? ` n/a ${JSON.stringify(p.na)}` : ""
          }`,
        );
      } catch (e) {
        failures.push(`${name}: ${String(e instanceof Error ? e.message : e).split("\n")[0]}`);
        log(`${name} failed to start: ${e instanceof Error ? e.message : e}`);
      }
    }
    if (!proxies.some((p) => p.name === "gateway")) {
      throw new Error(`the gateway did not start: ${failures.join("; ")}`);
    }
    await sleep(500);
    const idleStart = emptyRow("RSS idle, right after start (MiB)", 1);
    for (const p of proxies) {
      refreshTree(p.proc);
      idleStart.values[p.name] = rssBytes(p.proc) / MIB;
    }

    const results: ScenarioResult[] = [];
    for (const s of scenarios) results.push(await runScenario(ctx, proxies, s));

    const memoryRows: MemoryRow[] = [idleStart];
    if (wanted("memory")) {
      const idleAfter = emptyRow("RSS idle, after the scenarios above (MiB)", 1);
      for (const p of proxies) idleAfter.values[p.name] = exitedReason(p) ?? rssBytes(p.proc) / MIB;
      if (results.length) memoryRows.push(idleAfter);
      log(`memory: ${fmt(opts.idleConns)} idle connections`);
      memoryRows.push(...await idleConnectionRows(ctx, proxies));
      log(`memory: streaming ${opts.streamBytes / MIB} MiB`);
      memoryRows.push(...await streamRows(ctx, proxies));
    }

    let balancer = "";
    if (opts.balancer) {
      log("balancer micro-benchmark");
      balancer = await runBalancerBench();
    }

    const md = await render({
      opts,
      command,
      startedAt,
      loadStart,
      loadEnd: await loadavg(),
      results,
      memoryRows,
      failures,
      proxies,
      balancer,
    });
    const existing = await Deno.readTextFile(opts.out).catch(() => undefined);
    await Deno.writeTextFile(opts.out, splice(existing, md));
    log(`wrote ${opts.out}`);
    return 0;
  } catch (e) {
    console.error(`scripts/bench: ${e instanceof Error ? e.message : e}`);
    return 1;
  } finally {
    await cleanup();
  }
}

if (import.meta.main) {
  Deno.exit(await main());
}
