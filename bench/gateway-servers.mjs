// The two proxies bench:gateway compares, each run as production runs it: plain Node on compiled
// JavaScript (our gateway from dist/, as its container image runs it), no TypeScript loader.
// Forked by bench/gateway.bench.ts with `--role undici-proxy|diatonic`; BENCH_UPSTREAM is the upstream,
// BENCH_KEY the API key the gateway accepts.
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";
import { stringify } from "yaml";

const send = (message) => process.send?.(message);
process.on("message", (message) => {
  // A normal exit, so that a --cpu-prof profile is written (bench:gateway:profile).
  if (message.type === "exit") process.exit(0);
  if (message.type === "memory") {
    globalThis.gc?.();
    const usage = process.memoryUsage();
    send({ type: "memory", rss: usage.rss, heapUsed: usage.heapUsed });
  }
});

const role = process.argv[process.argv.indexOf("--role") + 1];
const upstream = process.env.BENCH_UPSTREAM ?? "";
const apiKey = process.env.BENCH_KEY ?? "";

if (role === "undici-proxy") {
  // The floor for a Node proxy: read the body, send it on with undici, pipe the answer back.
  const pool = new Pool(upstream, { connections: 256, pipelining: 1 });
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      pool
        .request({ method: req.method, path: req.url ?? "/", headers: { "content-type": "application/json" }, body: Buffer.concat(chunks) })
        .then((response) => {
          res.writeHead(response.statusCode, { "content-type": String(response.headers["content-type"] ?? "application/json") });
          response.body.pipe(res);
        })
        .catch(() => res.writeHead(502).end());
    });
  });
  server.listen(0, "127.0.0.1", () => send({ type: "ready", port: server.address().port }));
} else if (role === "diatonic") {
  const compiled = new URL("../dist/gateway/server.js", import.meta.url);
  if (!existsSync(compiled)) throw new Error("dist/ is missing: npm run build (bench:gateway does it first)");
  const { startGateway } = await import(compiled.href);
  const dir = mkdtempSync(join(tmpdir(), "diatonic-bench-gw-"));
  writeFileSync(
    join(dir, "keys.yaml"),
    stringify({
      keys: [{ sha256: createHash("sha256").update(apiKey).digest("hex"), tenant: "bench", adapters: ["*"], scopes: ["inference"] }],
    }),
  );
  const limits = { concurrency: 1024, queue: 1024, timeoutMs: 30_000, firstByteTimeoutMs: 10_000 };
  const config = {
    apiVersion: "diatonic.ai/v1alpha1",
    kind: "GatewayConfig",
    platform: "bench",
    server: { port: 8080, maxBodyBytes: 4 * 1024 * 1024, logPrompts: false },
    auth: { mode: "required", keysFile: join(dir, "keys.yaml") },
    rateLimits: { requestsPerMinute: 100_000_000, tokensPerMinute: 1_000_000_000 },
    upstreams: { engine: { url: upstream, discovery: "static", connectTimeoutMs: 2000 } },
    baseModel: { name: "llama-base", upstream: "engine" },
    adapters: [
      {
        name: "code",
        route: "/code",
        upstreamModel: "code-lora",
        upstream: "engine",
        systemPrompt: "You write code.",
        sampling: { temperature: 0.2, maxTokens: 64 },
        limits,
      },
    ],
  };
  writeFileSync(join(dir, "config.yaml"), stringify(config));
  // Access logs are written as in production (one JSON line per request, the default logger) to
  // this process's stdout, which is /dev/null.
  const gateway = await startGateway({ configFile: join(dir, "config.yaml"), port: 0 });
  send({ type: "ready", port: gateway.port });
} else {
  throw new Error(`unknown role ${role}`);
}
