// The gRPC origin of the benchmark's gRPC scenario: a real gRPC server on @grpc/grpc-js, run by
// node (never inside the gateway), listening on 127.0.0.1:PORT (h2c, no TLS).
//   node scripts/bench_harness/grpc_origin.mjs PORT
// eg.bench.Echo/Unary answers { text: "ok:" + text }. Prints {"port":N} once listening.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

// require(), not import: `deno check scripts/` reads this file and has no import map for npm packages.
const require = createRequire(import.meta.url);
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const here = path.dirname(fileURLToPath(import.meta.url));
const port = Number(process.argv[2] ?? "0");
const def = protoLoader.loadSync(path.join(here, "grpc_bench.proto"), { keepCase: true, defaults: true });
const pkg = grpc.loadPackageDefinition(def);
const server = new grpc.Server();
server.addService(pkg.eg.bench.Echo.service, {
  Unary(call, callback) {
    callback(null, { text: `ok:${call.request.text}` });
  },
});
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    console.error(String(err));
    process.exit(1);
  }
  console.log(JSON.stringify({ port: bound }));
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.forceShutdown();
    process.exit(0);
  });
}
