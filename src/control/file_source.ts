/**
 * The file config source: today's behaviour (SIGHUP re-reads the file through
 * Gateway.reload), plus, with `control.watch_file = true`, a reload whenever the file changes
 * on disk. The directory is watched rather than the file, because editors and config managers
 * replace files by rename, which ends a watch on the old inode; events are debounced so a
 * write in several pieces is one reload.
 */

import type { Logger } from "../observability/log.ts";
import type { ApplyTarget, ConfigSource } from "./source.ts";

const DEBOUNCE_MS = 150;

export class FileSource implements ConfigSource {
  readonly kind = "file";
  #target: ApplyTarget | undefined;
  #watcher: Deno.FsWatcher | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #loop: Promise<void> | undefined;

  constructor(readonly path: string, readonly watch: boolean, readonly log: Logger) {}

  start(target: ApplyTarget): void {
    this.#target = target;
    if (!this.watch) return;
    const slash = this.path.lastIndexOf("/");
    const dir = slash < 0 ? "." : slash === 0 ? "/" : this.path.slice(0, slash);
    const base = this.path.slice(slash + 1);
    try {
      this.#watcher = Deno.watchFs(dir, { recursive: false });
    } catch (e) {
      this.log.error("config file watch could not start; SIGHUP still reloads", {
        config: this.path,
        error: (e as Error)?.message ?? String(e),
      });
      return;
    }
    this.log.info("watching the config file", { config: this.path });
    this.#loop = (async () => {
      try {
        for await (const ev of this.#watcher!) {
          if (ev.kind === "access") continue;
          if (!ev.paths.some((p) => p.slice(p.lastIndexOf("/") + 1) === base)) continue;
          clearTimeout(this.#timer);
          this.#timer = setTimeout(() => void this.resync(), DEBOUNCE_MS);
        }
      } catch (e) {
        this.log.warn("config file watch ended; SIGHUP still reloads", { error: String(e) });
      }
    })();
  }

  async resync(): Promise<void> {
    await this.#target?.reload();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    try {
      this.#watcher?.close();
    } catch { /* already closed */ }
    await this.#loop;
  }
}
