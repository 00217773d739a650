/**
 * Maps config key paths (`listeners[1].routes[0].pool`) to line:column in the TOML source, so
 * errors found after parsing can still point at the text. A structure scanner, not a second
 * TOML parser: it walks table headers, arrays of tables, `key = value` lines, dotted keys,
 * inline tables and arrays (single- or multi-line) and skips over strings and comments, but it
 * does not check values. It runs only on text smol-toml has already accepted; on anything it
 * does not understand it stops early rather than guess, so positions degrade to the nearest
 * located ancestor, never to a wrong line.
 */

export interface Position {
  line: number;
  column: number;
}

export class KeyLocator {
  #positions = new Map<string, Position>();

  constructor(source: string) {
    try {
      new Scanner(source, this.#positions).document();
    } catch {
      // StopScan (text it does not follow) or anything else, e.g. a stack overflow on absurd
      // nesting: positions are a convenience, so those gathered so far stay and the rest fall
      // back to ancestors.
    }
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

class StopScan extends Error {}

const BARE_KEY = /[A-Za-z0-9_-]/;

class Scanner {
  #i = 0;
  #line = 1;
  #lineStart = 0;
  /** Array-of-tables path (`listeners`, `listeners[0].routes`) → index of its latest element. */
  #counters = new Map<string, number>();

  constructor(readonly src: string, readonly out: Map<string, Position>) {}

  document(): void {
    let table = "";
    for (;;) {
      this.#skipBlank(true);
      if (this.#i >= this.src.length) return;
      const pos = this.#pos();
      if (this.src.startsWith("[[", this.#i)) {
        this.#i += 2;
        const base = this.#resolve(this.#keyPath("]"));
        this.#expect("]]");
        const next = (this.#counters.get(base) ?? -1) + 1;
        this.#counters.set(base, next);
        table = `${base}[${next}]`;
        this.#mark(table, pos);
        if (next === 0) this.#mark(base, pos);
      } else if (this.src[this.#i] === "[") {
        this.#i += 1;
        table = this.#resolve(this.#keyPath("]"));
        this.#expect("]");
        this.#mark(table, pos);
      } else {
        this.#keyValue(table);
      }
    }
  }

  /** `a.b = value` inside `table`; records the key and everything inside the value. */
  #keyValue(table: string): void {
    const pos = this.#pos();
    const keys = this.#keyPath("=");
    this.#expect("=");
    const path = [table, ...keys].filter((s) => s !== "").join(".");
    this.#mark(path, pos);
    this.#value(path);
  }

  #value(path: string): void {
    this.#skipBlank(false);
    const c = this.src[this.#i];
    if (c === "{") {
      this.#i++;
      for (;;) {
        this.#skipBlank(true);
        if (this.src[this.#i] === "}") {
          this.#i++;
          return;
        }
        if (this.src[this.#i] === ",") {
          this.#i++;
          continue;
        }
        this.#keyValue(path);
      }
    }
    if (c === "[") {
      this.#i++;
      for (let n = 0;; n++) {
        this.#skipBlank(true);
        if (this.src[this.#i] === "]") {
          this.#i++;
          return;
        }
        this.#mark(`${path}[${n}]`, this.#pos());
        this.#value(`${path}[${n}]`);
        this.#skipBlank(true);
        if (this.src[this.#i] === ",") this.#i++;
      }
    }
    if (c === '"' || c === "'") {
      this.#string();
      return;
    }
    // Numbers, booleans, dates: up to the next delimiter.
    const start = this.#i;
    while (this.#i < this.src.length && !/[,\]}\n#]/.test(this.src[this.#i])) this.#i++;
    if (this.#i === start) throw new StopScan();
  }

  /** Dotted key up to (not including) `end`: `a . "b.c" . 'd'` → ["a", "b.c", "d"]. */
  #keyPath(end: string): string[] {
    const keys: string[] = [];
    for (;;) {
      this.#skipBlank(false);
      const c = this.src[this.#i];
      if (c === '"' || c === "'") keys.push(this.#string());
      else {
        const start = this.#i;
        while (this.#i < this.src.length && BARE_KEY.test(this.src[this.#i])) this.#i++;
        if (this.#i === start) throw new StopScan();
        keys.push(this.src.slice(start, this.#i));
      }
      this.#skipBlank(false);
      if (this.src[this.#i] === ".") this.#i++;
      else if (this.src[this.#i] === end[0]) return keys;
      else throw new StopScan();
    }
  }

  /** Any of the four TOML string forms; returns its (unescaped-enough) text for keys. */
  #string(): string {
    const q = this.src[this.#i];
    const triple = this.src.startsWith(q.repeat(3), this.#i);
    const close = triple ? q.repeat(3) : q;
    this.#i += close.length;
    let text = "";
    for (;;) {
      if (this.#i >= this.src.length) throw new StopScan();
      const c = this.src[this.#i];
      if (q === '"' && c === "\\") {
        text += this.src.slice(this.#i, this.#i + 2);
        if (this.src[this.#i + 1] === "\n") this.#newline(this.#i + 1);
        this.#i += 2;
        continue;
      }
      if (this.src.startsWith(close, this.#i)) {
        this.#i += close.length;
        // A multi-line string may end with up to two extra quotes (`""""` → one quote in the value).
        while (triple && this.src[this.#i] === q) this.#i++;
        return q === '"' ? unescapeKey(text) : text;
      }
      if (c === "\n") {
        if (!triple) throw new StopScan();
        this.#newline(this.#i);
      }
      text += c;
      this.#i++;
    }
  }

  /** Spaces, tabs, comments, and (when allowed) newlines. */
  #skipBlank(newlines: boolean): void {
    while (this.#i < this.src.length) {
      const c = this.src[this.#i];
      if (c === " " || c === "\t" || c === "\r") this.#i++;
      else if (c === "#") {
        while (this.#i < this.src.length && this.src[this.#i] !== "\n") this.#i++;
      } else if (c === "\n" && newlines) {
        this.#newline(this.#i);
        this.#i++;
      } else return;
    }
  }

  #expect(text: string): void {
    this.#skipBlank(false);
    if (!this.src.startsWith(text, this.#i)) throw new StopScan();
    this.#i += text.length;
  }

  #newline(at: number): void {
    this.#line++;
    this.#lineStart = at + 1;
  }

  #pos(): Position {
    return { line: this.#line, column: this.#i - this.#lineStart + 1 };
  }

  #mark(path: string, pos: Position): void {
    // The first mention wins: for `[a]` then `a.b = 1`, `a` stays at its header.
    if (!this.out.has(path)) this.out.set(path, pos);
  }

  /** Header segments → a concrete path, indexing arrays of tables by their latest element. */
  #resolve(segments: string[]): string {
    let path = "";
    for (let k = 0; k < segments.length; k++) {
      path = path ? `${path}.${segments[k]}` : segments[k];
      const idx = this.#counters.get(path);
      if (idx !== undefined && k < segments.length - 1) path = `${path}[${idx}]`;
    }
    return path;
  }
}

/** Enough unescaping for quoted keys: the common escapes; anything else is kept as written. */
const ESCAPES: Record<string, string> = { b: "\b", t: "\t", n: "\n", f: "\f", r: "\r" };

function unescapeKey(text: string): string {
  return text.replace(/\\(["\\btnfr])/g, (_, c: string) => ESCAPES[c] ?? c);
}
