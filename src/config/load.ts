/**
 * TOML text → validated, frozen ConfigSnapshot. Three passes, each with positions for errors:
 * parse (smol-toml), shape (schema.ts: types, units, defaults, unknown keys), semantics
 * (validate.ts: cross-references and files). Nothing here throws anything but ConfigError.
 */

import { parse as parseToml } from "smol-toml";
import { ConfigError, type ConfigProblem, describeFsError } from "./errors.ts";
import { KeyLocator } from "./locate.ts";
import { type FieldSpec, SCHEMA, type TableSpec } from "./schema.ts";
import { nearest } from "./suggest.ts";
import type { ConfigSnapshot, GatewayConfig } from "./types.ts";
import { formatDuration, formatSize, MAX_DURATION_MS, parseDuration, parseSize } from "./units.ts";
import { validateSemantics } from "./validate.ts";

/** A config file larger than this is refused before parsing (a 10 MB file is not a config). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

let generationCounter = 0;

export interface LoadOptions {
  /** Skip file-system checks (cert readability): used by `config push` style validation of remote docs. */
  skipFileChecks?: boolean;
  /** Receives warnings (they never fail a load). */
  warnings?: ConfigProblem[];
}

export async function loadConfigFile(path: string, opts: LoadOptions = {}): Promise<ConfigSnapshot> {
  const fail = (message: string): never => {
    throw new ConfigError([{ file: path, path: "", message }]);
  };
  let bytes: Uint8Array;
  try {
    const info = await Deno.stat(path);
    if (info.isDirectory) fail("is a directory, not a config file");
    if (!info.isFile) fail("not a regular file");
    if (info.size > MAX_CONFIG_BYTES) {
      fail(`file is ${info.size} bytes; a config may be at most ${MAX_CONFIG_BYTES} bytes`);
    }
    bytes = await readAtMost(path, MAX_CONFIG_BYTES);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    return fail(`cannot read config: ${describeFsError(e)}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return fail("not UTF-8 text (a TOML config must be UTF-8)");
  }
  return await loadConfigText(text, path, opts);
}

/** Reads a file, refusing it if it grew past `limit` since it was stat'ed (never reads more). */
async function readAtMost(path: string, limit: number): Promise<Uint8Array> {
  const f = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(limit + 1);
    let n = 0;
    for (;;) {
      const got = await f.read(buf.subarray(n));
      if (got === null) break;
      n += got;
      if (n > limit) {
        throw new ConfigError([{ file: path, path: "", message: `a config may be at most ${limit} bytes` }]);
      }
    }
    return buf.subarray(0, n);
  } finally {
    f.close();
  }
}

export async function loadConfigText(
  text: string,
  file: string,
  opts: LoadOptions = {},
): Promise<ConfigSnapshot> {
  if (text.length > MAX_CONFIG_BYTES) {
    throw new ConfigError([{ file, path: "", message: `a config may be at most ${MAX_CONFIG_BYTES} bytes` }]);
  }
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (e) {
    const err = e as { line?: number; column?: number; message?: string };
    const message = String(err.message ?? e).split("\n")[0].replace(/^Invalid TOML document: /, "");
    throw new ConfigError([{
      file,
      path: "",
      line: err.line,
      column: err.column,
      message: `TOML syntax: ${message}`,
    }]);
  }
  const locator = new KeyLocator(text);
  const problems: ConfigProblem[] = [];
  const report: Report = (path, message, severity = "error", near = path) => {
    const pos = locator.find(near);
    problems.push({ file, path, message, line: pos?.line, column: pos?.column, severity });
  };
  const config = normalizeTable(
    raw as Record<string, unknown>,
    SCHEMA,
    "",
    report,
  ) as unknown as GatewayConfig;
  // Cross-table checks assume a well-typed config, so they run only once the shape is right.
  if (!problems.some((p) => p.severity !== "warning")) {
    await validateSemantics(config, file, report, opts);
  }
  const errors = problems.filter((p) => p.severity !== "warning");
  opts.warnings?.push(...problems.filter((p) => p.severity === "warning"));
  if (errors.length > 0) throw new ConfigError(errors);
  const digestBytes = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  const digest = Array.from(new Uint8Array(digestBytes), (b) => b.toString(16).padStart(2, "0")).join("");
  return deepFreeze({ config, source: file, generation: ++generationCounter, digest, loadedAt: Date.now() });
}

/** Records a problem at `path`; `near` is where to point in the text when that differs (a missing key). */
export type Report = (path: string, message: string, severity?: "error" | "warning", near?: string) => void;

function normalizeTable(
  raw: Record<string, unknown>,
  spec: TableSpec,
  path: string,
  report: Report,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(raw)) {
    if (!(key in spec)) {
      const hint = nearest(key, Object.keys(spec));
      report(
        path ? `${path}.${key}` : key,
        `unknown key '${key}' ${path ? `in ${path}` : "at the top level"}` +
          (hint ? `; did you mean '${hint}'?` : `; valid keys: ${Object.keys(spec).join(", ")}`),
      );
    }
  }
  for (const [key, field] of Object.entries(spec)) {
    const keyPath = path ? `${path}.${key}` : key;
    const value = normalizeField(raw[key], field, keyPath, report);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  if (typeof v === "object") return v.constructor?.name === "TomlDate" ? "date" : "table";
  return typeof v === "number" ? (Number.isInteger(v) ? "integer" : "float") : typeof v;
}

/** `[[listeners.routes]]` for `listeners[0].routes`: how the user writes an entry of that array. */
function arrayHeader(path: string): string {
  return `[[${path.replace(/\[\d+\]/g, "")}]]`;
}

function normalizeField(value: unknown, field: FieldSpec, path: string, report: Report): unknown {
  if (value === undefined) {
    if ("required" in field && field.required) {
      report(
        path,
        field.type === "tables"
          ? `at least one ${arrayHeader(path)} entry is required`
          : `required key is missing: ${field.doc}`,
      );
      return undefined;
    }
    switch (field.type) {
      case "table":
        return field.optional ? undefined : normalizeTable({}, field.fields, path, report);
      case "tables":
        return [];
      case "duration":
        return field.default === undefined ? undefined : parseDuration(field.default);
      case "size":
        return field.default === undefined ? undefined : parseSize(field.default);
      default:
        return "default" in field ? field.default : undefined;
    }
  }
  const wrongType = (expected: string) => {
    report(path, `expected ${expected}, got ${typeName(value)}`);
    return undefined;
  };
  switch (field.type) {
    case "string": {
      if (typeof value !== "string") return wrongType("a string");
      if (field.pattern && !field.pattern.test(value)) {
        report(path, `invalid value ${JSON.stringify(value)}: ${field.patternHint ?? field.pattern}`);
        return undefined;
      }
      return value;
    }
    case "int_or_auto":
    case "int": {
      if (field.type === "int_or_auto" && value === "auto") return value;
      if (typeof value !== "number" || !Number.isInteger(value)) {
        return wrongType(field.type === "int_or_auto" ? '"auto" or an integer' : "an integer");
      }
      if (field.min !== undefined && value < field.min) {
        report(path, `must be at least ${field.min}, got ${value}`);
      } else if (field.max !== undefined && value > field.max) {
        report(path, `must be at most ${field.max}, got ${value}`);
      }
      return value;
    }
    case "bool":
      return typeof value === "boolean" ? value : wrongType("true or false");
    case "duration": {
      if (typeof value !== "string") return wrongType('a duration string such as "10s"');
      const ms = parseDuration(value);
      if (ms === undefined) {
        report(
          path,
          `invalid duration ${JSON.stringify(value)}; use a number with ms, s, m or h, e.g. "250ms", "10s"`,
        );
        return undefined;
      }
      const max = Math.min(field.max ?? MAX_DURATION_MS, MAX_DURATION_MS);
      if (field.min !== undefined && ms < field.min) {
        report(path, `must be at least ${formatDuration(field.min)}, got ${JSON.stringify(value)}`);
      } else if (ms > max) {
        report(path, `must be at most ${formatDuration(max)}, got ${JSON.stringify(value)}`);
      }
      return ms;
    }
    case "size": {
      if (typeof value !== "string") return wrongType('a size string such as "64MiB"');
      const bytes = parseSize(value);
      if (bytes === undefined) {
        report(
          path,
          `invalid size ${JSON.stringify(value)}; use a non-negative number with B, KiB, MiB, GiB ` +
            `(or KB, MB, GB), e.g. "64MiB"`,
        );
        return undefined;
      }
      if (field.min !== undefined && bytes < field.min) {
        report(path, `must be at least ${formatSize(field.min)}, got ${JSON.stringify(value)}`);
      } else if (field.max !== undefined && bytes > field.max) {
        report(path, `must be at most ${formatSize(field.max)}, got ${JSON.stringify(value)}`);
      }
      return bytes;
    }
    case "enum": {
      if (typeof value !== "string") return wrongType("a string");
      if (!field.values.includes(value)) {
        const hint = nearest(value, field.values);
        report(
          path,
          `invalid value '${value}'; one of: ${field.values.join(", ")}` +
            (hint ? `; did you mean '${hint}'?` : ""),
        );
        return undefined;
      }
      return value;
    }
    case "string_list": {
      if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
        return wrongType("an array of strings");
      }
      if (field.required && value.length === 0) report(path, "must not be empty");
      return [...value];
    }
    case "table": {
      if (typeName(value) !== "table") return wrongType("a table");
      return normalizeTable(value as Record<string, unknown>, field.fields, path, report);
    }
    case "tables": {
      if (!Array.isArray(value) || value.some((v) => typeName(v) !== "table")) {
        return wrongType(`an array of tables (${arrayHeader(path)})`);
      }
      if (field.required && value.length === 0) {
        report(path, `at least one ${arrayHeader(path)} entry is required`);
      }
      return value.map((v, i) =>
        normalizeTable(v as Record<string, unknown>, field.fields, `${path}[${i}]`, report)
      );
    }
  }
}

function deepFreeze<T>(obj: T): T {
  if (obj && typeof obj === "object" && !Object.isFrozen(obj)) {
    Object.freeze(obj);
    for (const v of Object.values(obj as Record<string, unknown>)) deepFreeze(v);
  }
  return obj;
}
