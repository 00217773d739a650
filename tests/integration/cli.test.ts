/**
 * The CLI through the real entry point: `deno run <the product's flags> main.ts ...` as a child
 * process. Exit codes (0 ok, 2 invalid config / bad usage / cannot bind), the --check summary,
 * one clear line per problem and never a stack trace, all-or-none binding, and --check on every
 * shipped example (a loop over config/examples/, so a new example is covered without editing
 * this file).
 *
 * The examples reference certificates under config/examples/certs/. Git does not keep mode 600,
 * and --check rightly refuses a group/other-readable key, so the examples are checked on a copy:
 * config/examples/ is copied to a temp dir as config/examples/, its *.key files are chmod 600,
 * and the gateway runs with that temp dir as its working directory (config paths are relative
 * to the working directory, so the example text is checked unchanged).
 */

import assert from "node:assert/strict";
import { baseFlags, gatewayFlags } from "../../scripts/flags.ts";
import { VERSION } from "../../src/version.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs main.ts under the product's permission flags (or `flags` when given); bounded in time. */
async function cli(
  args: string[],
  opts: { config?: string; cwd?: string; flags?: string[] } = {},
): Promise<Result> {
  const flags = opts.flags ?? gatewayFlags(opts.config ?? `${ROOT}config/default.toml`);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, MAIN, ...args],
    cwd: opts.cwd ?? ROOT,
    env: { LB_LOG_FORMAT: "json" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, 30_000);
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** No stack trace, no error-class prefix, no Deno panic output. */
function assertNoStack(text: string) {
  assert.doesNotMatch(text, /^\s+at /m, text);
  assert.doesNotMatch(text, /\bError:/, text);
  assert.doesNotMatch(text, /Stack backtrace|panicked|Uncaught/, text);
}

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "eg-cli-" });
}

/** A free port right now (bound to :0, then released). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** The listener's bind line in GOOD (not admin_bind, which also ends in `bind = ...`). */
const LISTENER_BIND = '\nbind = "127.0.0.1:0"';

const GOOD = `
[observability]
admin_bind = "127.0.0.1:0"

[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  path_prefix = "/api/"
  pool = "api"

[[pools]]
name = "api"
algorithm = "weighted_round_robin"
  [[pools.backends]]
  address = "127.0.0.1:9"
  weight = 3
`;

Deno.test("--version and --help print and exit 0", async () => {
  for (const flag of ["--version", "-V"]) {
    const r = await cli([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `expressgateway ${VERSION}`);
  }
  const h = await cli(["--help"]);
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stdout, /Usage:/);
  assert.match(h.stdout, /--check \[CONFIG\]/);
  assert.match(h.stdout, /Exit codes: 0 ok, 2 invalid config or usage .*\n1 runtime failure/);
});

Deno.test("usage errors exit 2 with one line", async () => {
  for (
    const [args, re] of [
      [["--bogus"], /^expressgateway: unknown option '--bogus'; see expressgateway --help$/],
      [["--check=yes"], /unknown option '--check=yes'/],
      [["a.toml", "b.toml"], /more than one config file given \('a.toml', 'b.toml'\)/],
    ] as const
  ) {
    const r = await cli([...args]);
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr.trim(), re);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.equal(r.stdout, "");
  }
});

Deno.test("--check on a good file prints the summary and exits 0", async () => {
  const dir = await tempDir();
  try {
    const config = `${dir}/good.toml`;
    await Deno.writeTextFile(config, GOOD);
    const r = await cli(["--check", config], { config });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^config ${config} is valid \\(sha256 [0-9a-f]{12}\\)`));
    assert.match(r.stdout, /listeners \(1\):\n {2}web: http on 127\.0\.0\.1:0/);
    assert.match(r.stdout, /\*\/api\/ → pool api/);
    assert.match(
      r.stdout,
      /pools \(1\):\n {2}api: weighted_round_robin, 1 backend\(s\)\n {4}h1:\/\/127\.0\.0\.1:9 weight 3/,
    );
    assert.equal(r.stderr, "");
    // Warnings go to stderr, one line each, and do not fail the check.
    const warned = `${dir}/warned.toml`;
    await Deno.writeTextFile(warned, GOOD.replace("weighted_round_robin", "round_robin"));
    const w = await cli(["--check", warned], { config: warned });
    assert.equal(w.code, 0, w.stderr);
    assert.equal(
      w.stderr.trim(),
      `${warned}:16:3: warning: pools[0].backends: algorithm 'round_robin' ignores weights; use weighted_round_robin`,
    );
    // `--check` after the path and `-t` work the same; no path means config/default.toml.
    const t = await cli([config, "-t"], { config });
    assert.equal(t.code, 0, t.stderr);
    const d = await cli(["--check"]);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /^config config\/default\.toml is valid/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--check on bad files: exit 2, one clear line per problem, no stack trace", async () => {
  const dir = await tempDir();
  try {
    const cases: Array<{ name: string; write: (p: string) => Promise<void>; expect: RegExp }> = [
      {
        name: "typo.toml",
        write: (p) =>
          Deno.writeTextFile(p, GOOD.replace('protocol = "http"', 'protocol = "http"\nmax_conections = 5')),
        expect:
          /typo\.toml:9:1: listeners\[0\]\.max_conections: unknown key 'max_conections' in listeners\[0\]; did you mean 'max_connections'\?$/,
      },
      {
        name: "pool.toml",
        write: (p) => Deno.writeTextFile(p, GOOD.replace('pool = "api"', 'pool = "api2"')),
        expect:
          /pool\.toml:11:3: listeners\[0\]\.routes\[0\]\.pool: pool 'api2' is not defined; defined pools: api$/,
      },
      {
        name: "syntax.toml",
        write: (p) => Deno.writeTextFile(p, '[[listeners]]\nname = "web\nbind = 1\n'),
        expect: /syntax\.toml:2:12: TOML syntax: control characters are not allowed in strings$/,
      },
      {
        name: "tls13.toml",
        write: async (p) => {
          // PEM-shaped files so that tls13_only is the only problem.
          await Deno.writeTextFile(`${dir}/c.pem`, "-----BEGIN CERTIFICATE-----\n");
          await Deno.writeTextFile(`${dir}/k.pem`, "-----BEGIN PRIVATE KEY-----\n", { mode: 0o600 });
          await Deno.writeTextFile(
            p,
            GOOD.replace(
              'protocol = "http"',
              `protocol = "https"\ntls = { cert = "${dir}/c.pem", key = "${dir}/k.pem", tls13_only = true }`,
            ),
          );
        },
        expect:
          /tls13\.toml:9:\d+: listeners\[0\]\.tls\.tls13_only: cannot be enforced: Deno's TLS stack \(rustls/,
      },
      {
        name: "garbage.toml",
        write: (p) => Deno.writeFile(p, new Uint8Array(10 * 1024 * 1024).fill(0x41)),
        expect: /garbage\.toml: file is 10485760 bytes; a config may be at most 1048576 bytes$/,
      },
      {
        name: "binary.toml",
        write: (p) => Deno.writeFile(p, new Uint8Array([0xff, 0xfe, 0x00, 0x01, 0x80])),
        expect: /binary\.toml: not UTF-8 text/,
      },
      {
        name: "adir.toml",
        write: (p) => Deno.mkdir(p),
        expect: /adir\.toml: is a directory, not a config file$/,
      },
      {
        name: "missing.toml",
        write: () => Promise.resolve(),
        expect: /missing\.toml: cannot read config: no such file$/,
      },
    ];
    for (const c of cases) {
      const path = `${dir}/${c.name}`;
      await c.write(path);
      const r = await cli(["--check", path], { config: path });
      assert.equal(r.code, 2, `${c.name}: ${r.stderr}`);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, `${c.name}: expected one line:\n${r.stderr}`);
      assert.match(lines[0], c.expect, `${c.name}: ${lines[0]}`);
      assert.ok(lines[0].startsWith(path), lines[0]);
      assertNoStack(r.stderr);
      assert.equal(r.stdout, "", c.name);
    }
    // Several problems: one line each, then a count.
    const several = `${dir}/several.toml`;
    await Deno.writeTextFile(
      several,
      GOOD.replace("[observability]", "[observability]\nlog_levl = 1\nacess_log = true"),
    );
    const r = await cli(["--check", several], { config: several });
    assert.equal(r.code, 2);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 3, r.stderr);
    assert.match(lines[0], /several\.toml:3:1: observability\.log_levl: .*did you mean 'log_level'\?/);
    assert.match(lines[1], /several\.toml:4:1: observability\.acess_log: .*did you mean 'access_log'\?/);
    assert.equal(lines[2], `expressgateway: ${several}: 2 errors`);
    assertNoStack(r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a cert outside the process's --allow-read is reported, not thrown", async () => {
  const confDir = await tempDir();
  const certDir = await tempDir();
  try {
    const config = `${confDir}/gw.toml`;
    await Deno.writeTextFile(`${certDir}/c.pem`, "-----BEGIN CERTIFICATE-----\n");
    await Deno.writeTextFile(
      config,
      GOOD.replace(
        'protocol = "http"',
        `protocol = "https"\ntls = { cert = "${certDir}/c.pem", key = "${certDir}/k.pem" }`,
      ),
    );
    // The product's flags, but read access only to the config's directory.
    const r = await cli(["--check", config], { flags: [...baseFlags(), `--allow-read=${confDir}`] });
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /listeners\[0\]\.tls\.cert: cannot read '.*c\.pem': not allowed by this process's --allow-read/,
    );
    assert.match(r.stderr, /listeners\[0\]\.tls\.key: cannot read '.*k\.pem': not allowed/);
    assertNoStack(r.stderr);
  } finally {
    await Deno.remove(confDir, { recursive: true });
    await Deno.remove(certDir, { recursive: true });
  }
});

Deno.test("a port already in use at boot: exit 2, 'address already in use', nothing left bound", async () => {
  const dir = await tempDir();
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const takenPort = (taken.addr as Deno.NetAddr).port;
  try {
    // One listener on the taken port.
    const one = `${dir}/one.toml`;
    await Deno.writeTextFile(one, GOOD.replace(LISTENER_BIND, `\nbind = "127.0.0.1:${takenPort}"`));
    const r1 = await cli([one], { config: one });
    assert.equal(r1.code, 2, r1.stderr);
    assert.match(
      r1.stderr,
      new RegExp(`listener 'web' cannot bind 127\\.0\\.0\\.1:${takenPort}: address already in use`),
    );
    assert.doesNotMatch(r1.stderr + r1.stdout, /gateway ready/);
    assertNoStack(r1.stderr);

    // All or none: the first listener's port is free, the second's is taken. The gateway must
    // exit 2 without ever serving, and the first port must be bindable afterwards.
    const firstPort = freePort();
    const two = `${dir}/two.toml`;
    await Deno.writeTextFile(
      two,
      GOOD.replace(LISTENER_BIND, `\nbind = "127.0.0.1:${firstPort}"`) +
        `\n[[listeners]]\nname = "second"\nbind = "127.0.0.1:${takenPort}"\nprotocol = "http"\n` +
        `  [[listeners.routes]]\n  pool = "api"\n`,
    );
    const r2 = await cli([two], { config: two });
    assert.equal(r2.code, 2, r2.stderr);
    assert.match(r2.stderr, /listener 'second' cannot bind .*: address already in use/);
    assert.doesNotMatch(r2.stderr + r2.stdout, /gateway ready/);
    assertNoStack(r2.stderr);
    const again = Deno.listen({ hostname: "127.0.0.1", port: firstPort });
    again.close();

    // The admin listener's address taken: named as such, same exit code.
    const admin = `${dir}/admin.toml`;
    await Deno.writeTextFile(
      admin,
      GOOD.replace('admin_bind = "127.0.0.1:0"', `admin_bind = "127.0.0.1:${takenPort}"`),
    );
    const r3 = await cli([admin], { config: admin });
    assert.equal(r3.code, 2, r3.stderr);
    assert.match(
      r3.stderr,
      new RegExp(
        `observability\\.admin_bind 127\\.0\\.0\\.1:${takenPort} cannot bind: address already in use`,
      ),
    );
    assertNoStack(r3.stderr);
  } finally {
    taken.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--check passes on every file in config/examples/ (and config/default.toml)", async () => {
  const work = await tempDir();
  try {
    await Deno.mkdir(`${work}/config`);
    await copyTree(`${ROOT}config/examples`, `${work}/config/examples`);
    const examples: string[] = [];
    for await (const e of Deno.readDir(`${work}/config/examples`)) {
      if (e.isFile && e.name.endsWith(".toml")) examples.push(`config/examples/${e.name}`);
    }
    examples.sort();
    // The shapes this build supports; a new example is picked up by the loop above.
    for (const name of ["balancing", "http", "https"]) {
      assert.ok(examples.includes(`config/examples/${name}.toml`));
    }
    await Deno.copyFile(`${ROOT}config/default.toml`, `${work}/config/default.toml`);
    for (const rel of [...examples, "config/default.toml"]) {
      const text = await Deno.readTextFile(`${work}/${rel}`);
      if (rel.startsWith("config/examples/")) {
        // Each example starts with a header comment giving the exact command that runs it.
        assert.match(
          text,
          new RegExp(
            `^# .+\\n(#.*\\n)*#\\s+node_modules/\\.bin/deno run .* main\\.ts ${
              rel.replaceAll(".", "\\.")
            }\\n`,
          ),
          `${rel}: header with the command`,
        );
      }
      const r = await cli(["--check", rel], { config: `${work}/${rel}`, cwd: work });
      assert.equal(r.code, 0, `${rel}:\n${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^config ${rel.replaceAll(".", "\\.")} is valid`));
      assert.equal(r.stderr, "", `${rel} should check without warnings`);
    }
    // The reason for the chmod: with the key as git checks it out (644), https.toml is refused.
    await Deno.chmod(`${work}/config/examples/certs/localhost.key`, 0o644);
    const r = await cli(["--check", "config/examples/https.toml"], {
      config: `${work}/config/examples/https.toml`,
      cwd: work,
    });
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /listeners\[0\]\.tls\.key: private key 'config\/examples\/certs\/localhost\.key' is accessible by group or others \(mode 644\); chmod 600 it/,
    );
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

/** Copies a directory tree; every *.key ends up mode 600 (git does not keep that mode). */
async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyTree(`${from}/${e.name}`, `${to}/${e.name}`);
    else if (e.isFile) {
      await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
      if (e.name.endsWith(".key")) await Deno.chmod(`${to}/${e.name}`, 0o600);
    }
  }
}
