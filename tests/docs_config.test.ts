/**
 * docs/CONFIG.md documents exactly the schema: every key path from schemaKeyPaths() has a row
 * (first cell `path` in backticks), every documented row is a schema key, and each row's Type
 * and Default cells say what the schema says. The convention is stated at the top of the doc.
 */
import assert from "node:assert/strict";
import { type FieldSpec, SCHEMA, schemaKeyPaths, type TableSpec } from "../src/config/schema.ts";
import { formatDuration, formatSize } from "../src/config/units.ts";

const DOC = new URL("../docs/CONFIG.md", import.meta.url);

interface Row {
  path: string;
  type: string;
  def: string;
  line: number;
}

/** Table rows whose first cell is a backticked key path. Cells split on unescaped `|`. */
function documentedRows(markdown: string): Row[] {
  const rows: Row[] = [];
  for (const [i, line] of markdown.split("\n").entries()) {
    if (!/^\|\s*`[^`]+`\s*\|/.test(line)) continue;
    const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
    const path = cells[0].replaceAll("`", "");
    if (!/^[a-z0-9_]+(\.[a-z0-9_]+)*$/.test(path)) continue; // a row of another kind of table
    rows.push({ path, type: cells[1] ?? "", def: (cells[2] ?? "").replaceAll("`", ""), line: i + 1 });
  }
  return rows;
}

/** The Type cell for a field, as the doc writes it. */
function typeLabel(f: FieldSpec): string {
  switch (f.type) {
    case "string":
      return "string";
    case "int":
      if (f.min !== undefined && f.max !== undefined) return `integer ${f.min}–${f.max}`;
      return f.min !== undefined ? `integer ≥ ${f.min}` : "integer";
    case "int_or_auto":
      return `"auto" or integer ${f.min ?? ""}–${f.max ?? ""}`.replace(" –", "").replace(/–$/, "");
    case "bool":
      return "bool";
    case "duration":
      return f.min !== undefined ? `duration ≥ ${formatDuration(f.min)}` : "duration";
    case "size":
      return f.min !== undefined ? `size ≥ ${formatSize(f.min)}` : "size";
    case "enum":
      return f.values.map((v) => `"${v}"`).join(" \\| ");
    case "string_list":
      return "array of strings";
    case "table":
      return "table";
    case "tables":
      return "array of tables";
  }
}

/** The Default cell for a field (backticks stripped). */
function defaultLabel(f: FieldSpec): string {
  if ("required" in f && f.required) return "required";
  if (f.type === "table") return f.optional ? "absent" : "—";
  if (f.type === "tables") return "none";
  if ("default" in f && f.default !== undefined) return JSON.stringify(f.default);
  return "unset";
}

function fieldsByPath(spec: TableSpec = SCHEMA, prefix = "", out = new Map<string, FieldSpec>()) {
  for (const [key, f] of Object.entries(spec)) {
    const path = prefix ? `${prefix}.${key}` : key;
    out.set(path, f);
    if (f.type === "table" || f.type === "tables") fieldsByPath(f.fields, path, out);
  }
  return out;
}

Deno.test("docs/CONFIG.md documents every schema key, and only schema keys", async () => {
  const rows = documentedRows(await Deno.readTextFile(DOC));
  const documented = rows.map((r) => r.path);
  const schema = schemaKeyPaths();
  const missing = schema.filter((p) => !documented.includes(p));
  const unknown = documented.filter((p) => !schema.includes(p));
  assert.deepEqual(missing, [], `keys in the schema but not in docs/CONFIG.md: ${missing.join(", ")}`);
  assert.deepEqual(unknown, [], `keys in docs/CONFIG.md but not in the schema: ${unknown.join(", ")}`);
  const dupes = documented.filter((p, i) => documented.indexOf(p) !== i);
  assert.deepEqual(dupes, [], `documented twice: ${dupes.join(", ")}`);
});

Deno.test("docs/CONFIG.md type and default cells match the schema", async () => {
  const rows = documentedRows(await Deno.readTextFile(DOC));
  const fields = fieldsByPath();
  const wrong: string[] = [];
  for (const r of rows) {
    const f = fields.get(r.path);
    if (!f) continue; // reported by the test above
    if (r.type !== typeLabel(f)) {
      wrong.push(`line ${r.line} ${r.path}: type '${r.type}', schema says '${typeLabel(f)}'`);
    }
    if (r.def !== defaultLabel(f)) {
      wrong.push(`line ${r.line} ${r.path}: default '${r.def}', schema says '${defaultLabel(f)}'`);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("the docs parser reads key rows and ignores other tables", () => {
  const md = [
    "| Key path | Type | Default | Description |",
    "|---|---|---|---|",
    "| `pools.hash_key` | string | unset | `header:NAME` \\| `client_ip` |",
    '| `runtime.drain_timeout` | duration | `"10s"` | text |',
    '| duration | a quoted number | `"250ms"` |',
    "| `gw.toml:9:1` | not a key |",
  ].join("\n");
  assert.deepEqual(documentedRows(md), [
    { path: "pools.hash_key", type: "string", def: "unset", line: 3 },
    { path: "runtime.drain_timeout", type: "duration", def: '"10s"', line: 4 },
  ]);
});
