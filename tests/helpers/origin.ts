/** Starts tests/fixtures/origin.mjs under node: a real HTTP/1.1 origin on a free port. */

import { stopChild } from "./common.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

export interface Origin {
  port: number;
  address: string;
  name: string;
  child: Deno.ChildProcess;
  /** Requests the origin has seen (excluding /__requests). */
  requests(): Promise<number>;
  /** Requests whose body (maybe empty) arrived complete (tests/fixtures/origin.mjs's /__stats). */
  completed(): Promise<number>;
  stop(): Promise<void>;
}

export async function startOrigin(name = "origin", fixedPort = 0): Promise<Origin> {
  const child = new Deno.Command("node", {
    args: [`${ROOT}tests/fixtures/origin.mjs`, name, String(fixedPort)],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const deadline = Date.now() + 10_000;
  while (!buf.includes("\n")) {
    if (Date.now() > deadline) throw new Error("origin did not start");
    const { value, done } = await reader.read();
    if (done) throw new Error("origin exited before listening");
    buf += dec.decode(value);
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  const port = JSON.parse(buf.split("\n")[0]).port as number;
  let stopped = false;
  return {
    port,
    address: `127.0.0.1:${port}`,
    name,
    child,
    async requests() {
      const r = await fetch(`http://127.0.0.1:${port}/__requests`);
      return (await r.json()).requests;
    },
    async completed() {
      const r = await fetch(`http://127.0.0.1:${port}/__stats`);
      return (await r.json()).completed;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopChild(child);
    },
  };
}
