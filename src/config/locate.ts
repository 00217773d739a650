/**
 * Maps config key paths (`listeners[1].routes[0].pool`) to line:column in the TOML source, so
 * semantic errors found after parsing can still point at the text. A line scanner, not a
 * second TOML parser: it understands table headers, arrays of tables and `key =` lines, which
 * is where every key of our schema lives. Keys inside inline tables resolve to the inline
 * table's own key (the nearest ancestor that has a position).
 */

export interface Position {
  line: number;
  column: number;
}

export class KeyLocator {
  #positions = new Map<string, Position>();

  constructor(source: string) {
    const counters = new Map<string, number>();
    let table = "";
    const lines = source.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const raw = lines[i];
      const text = raw.trimStart();
      const column = raw.length - text.length + 1;
      if (text.startsWith("[[")) {
        const end = text.indexOf("]]");
        if (end < 0) continue;
        const base = this.#resolve(splitKey(text.slice(2, end)), counters);
        const next = (counters.get(base) ?? -1) + 1;
        counters.set(base, next);
        table = `${base}[${next}]`;
        this.#positions.set(table, { line: i + 1, column });
        if (next === 0) this.#positions.set(base, { line: i + 1, column });
      } else if (text.startsWith("[")) {
        const end = text.indexOf("]");
        if (end < 0) continue;
        table = this.#resolve(splitKey(text.slice(1, end)), counters);
        this.#positions.set(table, { line: i + 1, column });
      } else {
        const m = /^((?:[A-Za-z0-9_-]+|"[^"]*")(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"))*)\s*=/.exec(text);
        if (!m) continue;
        const key = splitKey(m[1]).join(".");
        this.#positions.set(table ? `${table}.${key}` : key, { line: i + 1, column });
      }
    }
  }

  /** Turns header segments into a concrete path, indexing arrays of tables by their latest element. */
  #resolve(segments: string[], counters: Map<string, number>): string {
    let path = "";
    for (let k = 0; k < segments.length; k++) {
      path = path ? `${path}.${segments[k]}` : segments[k];
      const idx = counters.get(path);
      if (idx !== undefined && k < segments.length - 1) path = `${path}[${idx}]`;
    }
    return path;
  }

  /** Position of the path or of its nearest located ancestor. */
  find(path: string): Position | undefined {
    let p = path;
    while (p) {
      const hit = this.#positions.get(p);
      if (hit) return hit;
      const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      if (cut <= 0) return undefined;
      p = p.slice(0, cut);
    }
    return undefined;
  }
}

function splitKey(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/"([^"]*)"|([A-Za-z0-9_-]+)/g)) out.push(m[1] ?? m[2]);
  return out;
}
