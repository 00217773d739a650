/**
 * Deno ≥ 2.9.2 starts its V8 inspector on 127.0.0.1:9229 when the process receives SIGUSR1
 * (node's convention), with no authentication and no flag to turn it off, and SIGUSR1 is
 * the gateway's certificate-rotation signal. Any local user could then run code inside the
 * gateway. The inspector only binds if the port is free, so the gateway holds 127.0.0.1:9229
 * itself for its whole life (reusePort, so several gateways on one host can all hold it) and
 * closes every connection at once: the SIGUSR1 inspector then fails to start and Deno carries on.
 */

import type { Logger } from "../observability/log.ts";

export const INSPECTOR_ADDRESS = { hostname: "127.0.0.1", port: 9229 } as const;

export function occupyInspectorPort(log: Logger): Deno.Listener | undefined {
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ ...INSPECTOR_ADDRESS, reusePort: true } as Deno.TcpListenOptions);
  } catch (e) {
    // Someone else holds the port (another gateway without reusePort, or a debugger someone
    // started on purpose): either way the SIGUSR1 inspector cannot bind it either.
    log.warn("could not hold 127.0.0.1:9229 against Deno's SIGUSR1 inspector; check who owns it", {
      error: e instanceof Error ? e.message : String(e),
    });
    return undefined;
  }
  (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // closed at shutdown
      }
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  })();
  return listener;
}
