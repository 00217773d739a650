/**
 * Structured logging: JSON lines (default) or `key=value` text. Operational logs go to
 * stderr, access logs to stdout, both through a small buffer flushed every 50 ms or 64 KiB so
 * that a log line per request does not cost a write syscall per request.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "json" | "text";
type Fields = Record<string, unknown>;

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const encoder = new TextEncoder();

class BufferedSink {
  #parts: string[] = [];
  #size = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  constructor(private readonly out: { writeSync(p: Uint8Array): number }) {}

  write(line: string): void {
    this.#parts.push(line);
    this.#size += line.length;
    if (this.#size >= 64 * 1024) this.flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), 50);
      Deno.unrefTimer(this.#timer!);
    }
  }

  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#parts.length === 0) return;
    const bytes = encoder.encode(this.#parts.join(""));
    this.#parts = [];
    this.#size = 0;
    let off = 0;
    try {
      while (off < bytes.length) off += this.out.writeSync(bytes.subarray(off));
    } catch {
      // A closed stdout/stderr (EPIPE) must never take the gateway down; the line is lost.
    }
  }
}

const stderrSink = new BufferedSink(Deno.stderr);
const stdoutSink = new BufferedSink(Deno.stdout);

export class Logger {
  constructor(
    private level: LogLevel = "info",
    private format: LogFormat = "json",
    private readonly context: Fields = {},
  ) {}

  /** Applies config, letting LB_LOG_FORMAT / LB_LOG_LEVEL win. */
  configure(level: LogLevel, format: LogFormat): void {
    this.level = envLevel() ?? level;
    this.format = envFormat() ?? format;
  }

  child(context: Fields): Logger {
    const c = new Logger(this.level, this.format, { ...this.context, ...context });
    return c;
  }

  enabled(level: LogLevel): boolean {
    return LEVEL_RANK[level] >= LEVEL_RANK[this.level];
  }

  debug(msg: string, fields?: Fields) {
    this.#log("debug", msg, fields);
  }
  info(msg: string, fields?: Fields) {
    this.#log("info", msg, fields);
  }
  warn(msg: string, fields?: Fields) {
    this.#log("warn", msg, fields);
  }
  error(msg: string, fields?: Fields) {
    this.#log("error", msg, fields);
  }

  /** One access-log line (stdout), regardless of level. */
  access(fields: Fields): void {
    stdoutSink.write(this.#render("info", "access", fields));
  }

  #log(level: LogLevel, msg: string, fields?: Fields) {
    if (LEVEL_RANK[level] < LEVEL_RANK[this.level]) return;
    stderrSink.write(this.#render(level, msg, fields));
    if (level === "error") stderrSink.flush();
  }

  #render(level: LogLevel, msg: string, fields?: Fields): string {
    const ts = new Date().toISOString();
    if (this.format === "json") {
      return JSON.stringify({ ts, level, msg, ...this.context, ...fields }, jsonSafe) + "\n";
    }
    let line = `${ts} ${level.toUpperCase().padEnd(5)} ${msg}`;
    for (const [k, v] of Object.entries({ ...this.context, ...fields })) {
      if (v === undefined) continue;
      const s = typeof v === "string" ? v : JSON.stringify(v, jsonSafe);
      line += ` ${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
    }
    return line + "\n";
  }
}

function jsonSafe(_key: string, value: unknown): unknown {
  if (value instanceof Error) return value.message;
  if (typeof value === "bigint") return value.toString();
  return value;
}

function envFormat(): LogFormat | undefined {
  const v = safeEnv("LB_LOG_FORMAT");
  return v === "json" || v === "text" ? v : undefined;
}

function envLevel(): LogLevel | undefined {
  const v = safeEnv("LB_LOG_LEVEL");
  return v && v in LEVEL_RANK ? v as LogLevel : undefined;
}

function safeEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // not granted --allow-env for it: the config decides
  }
}

export function flushLogs(): void {
  stderrSink.flush();
  stdoutSink.flush();
}

/** The process-wide logger; configured from the snapshot at boot and on reload. */
export const log = new Logger(envLevel() ?? "info", envFormat() ?? "json");
