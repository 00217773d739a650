/**
 * A config problem with everything an operator needs to find it: file, line:column, key path
 * and what is wrong. Formatted as exactly one line per problem (control characters from the
 * file are escaped), so a message can never smuggle in extra lines or look like a stack trace.
 */

/** At most this many problems are printed; a file of garbage keys must not print megabytes. */
export const MAX_PRINTED_PROBLEMS = 50;

export class ConfigError extends Error {
  constructor(
    readonly problems: ConfigProblem[],
  ) {
    const shown = problems.slice(0, MAX_PRINTED_PROBLEMS).map(formatProblem);
    if (problems.length > MAX_PRINTED_PROBLEMS) {
      shown.push(`${problems[0].file}: ... and ${problems.length - MAX_PRINTED_PROBLEMS} more problems`);
    }
    super(shown.join("\n"));
    this.name = "ConfigError";
  }
}

export interface ConfigProblem {
  file: string;
  /** Dotted key path such as `listeners[1].routes[0].pool`; empty for file-level problems. */
  path: string;
  message: string;
  line?: number;
  column?: number;
  /** Warnings are printed by --check but never stop a boot or a reload. */
  severity?: "error" | "warning";
}

/** `file:line:col: [warning: ]path: message`, on one line. */
export function formatProblem(p: ConfigProblem): string {
  const where = p.line ? `${p.file}:${p.line}:${p.column ?? 1}` : p.file;
  const key = p.path ? `${p.path}: ` : "";
  const level = p.severity === "warning" ? "warning: " : "";
  return oneLine(`${where}: ${level}${key}${p.message}`);
}

/** Escapes control characters (newlines included) the way JSON would. */
export function oneLine(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

/** One short phrase for a file-system error (no paths, no stack). */
export function describeFsError(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "no such file";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied by the file system";
  if (e instanceof Deno.errors.NotCapable) {
    return "not allowed by this process's --allow-read (scripts/flags.ts grants the directories the config names)";
  }
  if (e instanceof Deno.errors.IsADirectory) return "is a directory";
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}
