/**
 * What the benchmark smoke tests (bench_smoke, bench_l4_smoke) share: running `scripts/bench`
 * bounded in time with a pid file, reading the markdown tables it wrote, checking that every
 * process it started is gone, and that docs/benchmarks.md was not touched.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../..", import.meta.url).pathname;

/** The start time (field 22 of /proc/PID/stat) of a live process; undefined when gone or a zombie. */
export function startTime(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return f[0] === "Z" ? undefined : f[19];
  } catch {
    return undefined;
  }
}

/**
 * Rows of the first markdown table after `#### title` whose header starts with `header` (and,
 * when given, that follows a line equal to `after`), as cells (header and rule skipped).
 */
export function tableAfter(md: string, title: string, header = "| proxy |", after?: string): string[][] {
  const start = md.indexOf(`#### ${title}`);
  assert.ok(start >= 0, `no section "${title}" in:\n${md}`);
  const lines = md.slice(start).split("\n");
  const from = after === undefined ? 0 : lines.indexOf(after);
  assert.ok(from >= 0, `no line "${after}" under "${title}"`);
  const first = lines.findIndex((l, i) => i > from && l.startsWith(header));
  assert.ok(first > 0, `no table "${header}" under "${title}"`);
  const rows: string[][] = [];
  for (const l of lines.slice(first + 2)) {
    if (!l.startsWith("|")) break;
    rows.push(l.split("|").slice(1, -1).map((c) => c.trim()));
  }
  return rows;
}

/** The number a table cell starts with ("1,234 (±5 %)" → 1234). */
export function num(cell: string): number {
  return Number(cell.split(" ")[0].replace(/,/g, ""));
}

/**
 * Runs `scripts/bench ARGS --out OUT` with BENCH_PIDFILE set, SIGTERM after `limitMs` (it reaches
 * the harness through the wrapper, which tears everything down). Asserts it exited 0 and left
 * nothing for the wrapper's safety net to kill; returns what it wrote to `out`.
 */
export async function runBench(
  args: string[],
  out: string,
  pidfile: string,
  limitMs: number,
): Promise<string> {
  const child = new Deno.Command("bash", {
    args: [`${ROOT}scripts/bench`, ...args, "--out", out],
    cwd: ROOT,
    env: { BENCH_PIDFILE: pidfile },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGTERM");
    } catch { /* exited */ }
  }, limitMs);
  const res = await child.output();
  clearTimeout(timer);
  const stderr = new TextDecoder().decode(res.stderr);
  const what = `scripts/bench ${args.join(" ")}`;
  assert.equal(res.code, 0, `${what} failed (${res.code}):\n${stderr.slice(-4000)}`);
  assert.doesNotMatch(stderr, /killing leftover/, `${what} left processes for the wrapper to kill`);
  return await Deno.readTextFile(out);
}

/**
 * The pid file lists every name in `expected`, and none of its processes (pid and start time) is
 * still running. Returns the names it lists.
 */
export async function assertAllGone(pidfile: string, expected: string[]): Promise<Set<string>> {
  const lines = (await Deno.readTextFile(pidfile)).trim().split("\n").filter(Boolean);
  const names = new Set(lines.map((l) => l.split(" ")[2]));
  for (const n of expected) assert.ok(names.has(n), `pid file lists no ${n}: ${[...names].join(", ")}`);
  for (const l of lines) {
    const [pid, start, name] = l.split(" ");
    assert.notEqual(startTime(Number(pid)), start, `${name} (pid ${pid}) is still running`);
  }
  return names;
}

/** Reads docs/benchmarks.md now; the returned check asserts it is unchanged later. */
export async function docsUntouched(): Promise<() => Promise<void>> {
  const docPath = `${ROOT}docs/benchmarks.md`;
  const before = await Deno.readTextFile(docPath).catch(() => undefined);
  return async () => assert.equal(await Deno.readTextFile(docPath).catch(() => undefined), before);
}
