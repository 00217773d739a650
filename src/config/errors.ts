/** A config problem with everything an operator needs to find it. Never carries a stack to the user. */
export class ConfigError extends Error {
  constructor(
    readonly problems: ConfigProblem[],
  ) {
    super(problems.map(formatProblem).join("\n"));
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

export function formatProblem(p: ConfigProblem): string {
  const where = p.line ? `${p.file}:${p.line}:${p.column ?? 1}` : p.file;
  const key = p.path ? `${p.path}: ` : "";
  const level = p.severity === "warning" ? "warning: " : "";
  return `${where}: ${level}${key}${p.message}`;
}
