/**
 * A tiny demo origin for the quickstart (Deno.serve is fine here: it is a test peer, not the
 * gateway). Answers every request with who it is and what it saw.
 *   deno run --allow-net scripts/demo_origin.ts PORT NAME
 */
const port = Number(Deno.args[0] ?? 8081);
const name = Deno.args[1] ?? `origin-${port}`;
Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req) => {
  const body = req.body ? (await req.arrayBuffer()).byteLength : 0;
  const url = new URL(req.url);
  return new Response(
    `hello from ${name}: ${req.method} ${url.pathname}${url.search} (${body} body bytes, ` +
      `x-forwarded-for ${req.headers.get("x-forwarded-for")})\n`,
    { headers: { "content-type": "text/plain; charset=utf-8", "x-origin": name } },
  );
});
