/**
 * `npm run demo`: two demo origins on 127.0.0.1:8081/8082 and the gateway on
 * config/default.toml in front of them, under the gateway's real permission flags.
 * Ctrl-C drains the gateway and stops everything.
 */
import { gatewayFlags } from "./flags.ts";

const deno = Deno.execPath();
const origins = [8081, 8082].map((port, i) =>
  new Deno.Command(deno, {
    args: ["run", "--allow-net=127.0.0.1", "scripts/demo_origin.ts", String(port), `origin-${i + 1}`],
    stdout: "inherit",
    stderr: "inherit",
  }).spawn()
);
const config = "config/default.toml";
const gateway = new Deno.Command(deno, {
  args: ["run", "--no-prompt", ...gatewayFlags(config), "main.ts", config],
  env: { LB_LOG_FORMAT: Deno.env.get("LB_LOG_FORMAT") ?? "text" },
  stdout: "inherit",
  stderr: "inherit",
}).spawn();

async function ready(): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch("http://127.0.0.1:9090/readyz");
      await r.body?.cancel();
      if (r.ok) return true;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

const stopAll = () => {
  try {
    gateway.kill("SIGTERM");
  } catch { /* gone */ }
  for (const o of origins) {
    try {
      o.kill("SIGTERM");
    } catch { /* gone */ }
  }
};
Deno.addSignalListener("SIGINT", stopAll);
Deno.addSignalListener("SIGTERM", stopAll);

if (await ready()) {
  console.log(`
expressgateway is proxying on http://127.0.0.1:8080 to two demo origins. Try:
  curl http://127.0.0.1:8080/             # spread over origin-1 and origin-2 (round_robin per worker)
  curl http://127.0.0.1:8080/gateway/hello  # answered by the gateway itself
  curl http://127.0.0.1:9090/metrics        # Prometheus metrics
Ctrl-C to stop.
`);
} else {
  console.error("gateway did not become ready; see the log above");
  stopAll();
}
const status = await gateway.status;
stopAll();
Deno.exit(status.code);
