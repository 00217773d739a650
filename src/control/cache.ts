/**
 * The local copy of the last applied etcd document (control.cache_file), so a gateway can boot
 * when etcd is down. The file is the TOML document itself behind one comment line recording
 * the key and revision it came from, so an operator can `--check` it or read it; it is
 * replaced atomically (write a temp file in the same directory, fsync, rename) so a crash mid-
 * write leaves the previous copy, never half of one.
 */

export interface CachedConfig {
  text: string;
  revision: number;
  key: string;
}

const HEADER = /^# expressgateway config cache: key=(\S+) revision=(\d+)[^\n]*\n/;

export function formatCache(c: CachedConfig, now = new Date()): string {
  return `# expressgateway config cache: key=${c.key} revision=${c.revision} written=${now.toISOString()}\n${c.text}`;
}

/** The cached document, or undefined when the file does not exist. Throws on a damaged cache. */
export async function readCache(path: string): Promise<CachedConfig | undefined> {
  let raw: string;
  try {
    raw = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`cannot read cache ${path}: ${(e as Error).message.split("\n")[0]}`);
  }
  const m = HEADER.exec(raw);
  if (!m) throw new Error(`cache ${path} has no expressgateway header line (not written by the gateway?)`);
  return { key: m[1], revision: Number(m[2]), text: raw.slice(m[0].length) };
}

/** Atomic replace: temp file in the same directory, fsync, rename over the old copy. */
export async function writeCache(path: string, c: CachedConfig): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
  try {
    const bytes = new TextEncoder().encode(formatCache(c));
    let off = 0;
    while (off < bytes.length) off += await f.write(bytes.subarray(off));
    await f.syncData();
  } catch (e) {
    f.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  f.close();
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
