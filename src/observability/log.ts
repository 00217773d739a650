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

/** Level and format shared by a logger and its children, so a reload reconfigures them all. */
interface LogSettings {
  level: LogLevel;
  format: LogFormat;
}

export class Logger {
  readonly #settings: LogSettings;
  constructor(
    level: LogLevel = "info",
    format: LogFormat = "json",
    private readonly context: Fields = {},
    settings?: LogSettings,
  ) {
    this.#settings = settings ?? { level, format };
  }

  get level(): LogLevel {
    return this.#settings.level;
  }

  get format(): LogFormat {
    return this.#settings.format;
  }

  /** Applies config, letting LB_LOG_FORMAT / LB_LOG_LEVEL win. */
  configure(level: LogLevel, format: LogFormat): void {
    this.#settings.level = envLevel() ?? level;
    this.#settings.format = envFormat() ?? format;
  }

  child(context: Fields): Logger {
    return new Logger(this.level, this.format, { ...this.context, ...context }, this.#settings);
  }

  enabled(level: LogLevel): boolean {
    return LEVEL_RANK[level] >= LEVEL_RANK[this.#settings.level];
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

  /** One access-log line (stdout), regardless of level (access_log = false turns these off). */
  access(fields: Fields): void {
    stdoutSink.write(this.render("info", "access", fields));
  }

  #log(level: LogLevel, msg: string, fields?: Fields) {
    if (!this.enabled(level)) return;
    stderrSink.write(this.render(level, msg, fields));
    if (level === "error") stderrSink.flush();
  }

  /**
   * One line: JSON (`{"ts","level","msg",...fields}`) or logfmt text
   * (`ts=… level=info msg="gateway ready" key=value …`), values quoted when they hold spaces,
   * quotes, `=`, backslashes or control characters, so every line splits back into pairs.
   */
  render(level: LogLevel, msg: string, fields?: Fields): string {
    const ts = new Date().toISOString();
    if (this.#settings.format === "json") {
      try {
        return JSON.stringify({ ts, level, msg, ...this.context, ...fields }, jsonSafe) + "\n";
      } catch {
        // A cyclic field object: log the message rather than throwing from a log call.
        return JSON.stringify({ ts, level, msg, log_error: "unserializable fields" }) + "\n";
      }
    }
    let line = `ts=${ts} level=${level} msg=${textValue(msg)}`;
    for (const [k, v] of Object.entries({ ...this.context, ...fields })) {
      if (v === undefined) continue;
      let s: string;
      try {
        s = typeof v === "string" ? v : JSON.stringify(v, jsonSafe) ?? String(v);
      } catch {
        s = "[unserializable]";
      }
      line += ` ${k}=${textValue(s)}`;
    }
    return line + "\n";
  }
}

function textValue(s: string): string {
  // deno-lint-ignore no-control-regex
  return s === "" || /[\s"=\\\x00-\x1f\x7f]/.test(s) ? JSON.stringify(s) : s;
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
