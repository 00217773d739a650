/**
 * Standalone runner for the XDP fast path: the integration tests and the benchmark drive the
 * controller through it inside a network namespace, and an operator can use it to try an XDP
 * config without the gateway.
 *
 *   deno run --allow-ffi [--allow-read=<file>] src/xdp/cli.ts '<options JSON>' | <options.json>
 *
 * Prints one JSON line on stdout when attached ({"event":"ready",…}) or failed
 * ({"event":"error","kind",…}, exit 1). Then answers JSON-line commands on stdin, one JSON
 * line each: {"cmd":"stats"} | {"cmd":"metrics"} | {"cmd":"backends","backends":[…]} |
 * {"cmd":"reconfigure","options":{…}} | {"cmd":"pinned","tuple":{…}} | {"cmd":"close"}.
 * SIGHUP re-reads an options file (backends, rate); SIGTERM, SIGINT, "close" and stdin EOF
 * detach and exit 0.
 */

import { exposition, Registry } from "../observability/metrics.ts";
import { XdpController, XdpStartError } from "./controller.ts";
import type { XdpOptions } from "./options.ts";

const enc = new TextEncoder();
function emit(obj: unknown): void {
  Deno.stdout.writeSync(enc.encode(JSON.stringify(obj) + "\n"));
}

function readOptions(arg: string): XdpOptions {
  return JSON.parse(arg.trimStart().startsWith("{") ? arg : Deno.readTextFileSync(arg));
}

async function main(): Promise<number> {
  const arg = Deno.args[0];
  if (!arg) {
    console.error("usage: cli.ts '<options JSON>' | <options.json>");
    return 2;
  }
  const registry = new Registry();
  const logger = {
    info: (msg: string, f?: Record<string, unknown>) =>
      console.error(JSON.stringify({ level: "info", msg, ...f })),
    warn: (msg: string, f?: Record<string, unknown>) =>
      console.error(JSON.stringify({ level: "warn", msg, ...f })),
  };
  let ctl: XdpController;
  try {
    ctl = XdpController.start(readOptions(arg), { registry, log: logger });
  } catch (e) {
    const kind = e instanceof XdpStartError ? e.kind : "config";
    emit({ event: "error", kind, message: (e as Error).message });
    return 1;
  }
  emit({ event: "ready", attachments: ctl.attachments, pid: Deno.pid });

  let done = false;
  const stop = () => {
    if (done) return;
    done = true;
    ctl.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  if (!arg.trimStart().startsWith("{")) {
    Deno.addSignalListener("SIGHUP", () => {
      try {
        ctl.reconfigure(readOptions(arg));
      } catch (e) {
        logger.warn("xdp reload rejected", { error: (e as Error).message });
      }
    });
  }

  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let buf = "";
  for await (const chunk of lines) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === "") continue;
      try {
        const c = JSON.parse(line);
        switch (c.cmd) {
          case "stats":
            emit({ ok: true, stats: ctl.stats() });
            break;
          case "metrics":
            emit({ ok: true, text: exposition(registry.collect()) });
            break;
          case "backends":
            ctl.setBackends(c.backends);
            emit({ ok: true });
            break;
          case "reconfigure":
            ctl.reconfigure(c.options);
            emit({ ok: true });
            break;
          case "pinned":
            emit({ ok: true, backend: ctl.pinnedBackend(c.tuple) });
            break;
          case "close":
            ctl.close();
            emit({ ok: true });
            return 0;
          default:
            emit({ ok: false, error: `unknown command ${JSON.stringify(c.cmd)}` });
        }
      } catch (e) {
        emit({ ok: false, error: (e as Error).message });
      }
    }
  }
  stop();
  return 0;
}

if (import.meta.main) Deno.exit(await main());
