// A folder served with the parts of the Hugging Face Hub API that downloads use: the tree listing
// (sizes and checksums) and `resolve` with byte ranges. It is the test cluster's mirror (pods
// download the generated model from it through HF_ENDPOINT) and the tests' hub; nothing here
// reaches huggingface.co. Layout: <root>/<org>/<repo>/<revision>/<files>.
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join, relative, sep } from "node:path";

/** Files stored in LFS on the real hub (their listing carries a sha256); others get a git sha1. */
const LFS = /\.(gguf|safetensors|bin|pt|onnx|tar|gz|tgz)$/i;

export interface HubServerOptions {
  readonly root: string;
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** @default 0 (a free port) */
  readonly port?: number;
  /** Requests without `authorization: Bearer <token>` get 401, as for a gated repo. @default none needed */
  readonly token?: string;
  /** Serve HTTPS with this certificate (PEM) instead of HTTP, as a mirror behind TLS does. @default HTTP */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** Every request path, for tests that count what was fetched. */
  readonly onRequest?: (method: string, url: string, range: string | undefined) => void;
}

export interface RunningHub {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

interface TreeEntry {
  readonly type: "file";
  readonly path: string;
  readonly size: number;
  readonly oid: string;
  readonly lfs?: { readonly oid: string; readonly size: number; readonly pointerSize: number };
}

const digests = new Map<string, { mtimeMs: number; sha256: string; gitSha1: string }>();

function digestOf(file: string): { sha256: string; gitSha1: string } {
  const info = statSync(file);
  const known = digests.get(file);
  if (known !== undefined && known.mtimeMs === info.mtimeMs) return known;
  const content = readFileSync(file);
  const entry = {
    mtimeMs: info.mtimeMs,
    sha256: createHash("sha256").update(content).digest("hex"),
    gitSha1: createHash("sha1").update(`blob ${content.length}\0`).update(content).digest("hex"),
  };
  digests.set(file, entry);
  return entry;
}

function walk(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, out);
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

function tree(revisionDir: string): TreeEntry[] {
  return walk(revisionDir).map((file) => {
    const size = statSync(file).size;
    const { sha256, gitSha1 } = digestOf(file);
    const path = relative(revisionDir, file).split(sep).join("/");
    return LFS.test(path)
      ? { type: "file", path, size, oid: gitSha1, lfs: { oid: sha256, size, pointerSize: 134 } }
      : { type: "file", path, size, oid: gitSha1 };
  });
}

function error(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { "content-type": "application/json", "x-error-code": code }).end(JSON.stringify({ error: message }));
}

/** Inside the root: repo ids and revisions never climb out of it. */
function safeSegments(...parts: string[]): boolean {
  return parts.every((part) => part.split("/").every((segment) => segment !== "" && segment !== "." && segment !== ".."));
}

function handle(options: HubServerOptions, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? "/", "http://hub");
  const path = decodeURIComponent(url.pathname);
  options.onRequest?.(req.method ?? "GET", req.url ?? "/", req.headers.range);
  if (options.token !== undefined && req.headers.authorization !== `Bearer ${options.token}`) {
    error(res, 401, "GatedRepo", "Access to this repo is restricted: a valid token is needed");
    return;
  }
  const listing = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/(.+)$/.exec(path);
  if (listing?.[1] && listing[2]) {
    const [, repo, revision] = listing;
    const dir = join(options.root, repo, revision);
    if (!safeSegments(repo, revision) || !existsSync(dir)) {
      error(res, 404, "RevisionNotFound", `Invalid rev id: ${revision}`);
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(tree(dir)));
    return;
  }
  const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
  if (resolve?.[1] && resolve[2] && resolve[3]) {
    const [, repo, revision, file] = resolve;
    const dir = join(options.root, repo, revision);
    const target = join(dir, file);
    if (!safeSegments(repo, revision, file) || !existsSync(dir)) {
      error(res, 404, "RevisionNotFound", `Invalid rev id: ${revision}`);
      return;
    }
    if (!existsSync(target) || !statSync(target).isFile()) {
      error(res, 404, "EntryNotFound", `${file} does not exist at ${revision}`);
      return;
    }
    const size = statSync(target).size;
    const { sha256, gitSha1 } = digestOf(target);
    const etag = `"${LFS.test(file) ? sha256 : gitSha1}"`;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (range?.[1] !== undefined) {
      const start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (start >= size && size > 0) {
        res.writeHead(416, { "content-range": `bytes */${size}` }).end();
        return;
      }
      res.writeHead(206, {
        "content-length": String(end - start + 1),
        "content-range": `bytes ${start}-${end}/${size}`,
        etag,
        "x-linked-etag": etag,
        "accept-ranges": "bytes",
      });
      if (req.method === "HEAD" || size === 0) res.end();
      else createReadStream(target, { start, end }).pipe(res);
      return;
    }
    res.writeHead(200, { "content-length": String(size), etag, "x-linked-etag": etag, "accept-ranges": "bytes" });
    if (req.method === "HEAD") res.end();
    else createReadStream(target).pipe(res);
    return;
  }
  error(res, 404, "NotFound", `no such path: ${path}`);
}

/** Starts the mirror; `close` stops it. */
export function startHubServer(options: HubServerOptions): Promise<RunningHub> {
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => handle(options, req, res);
  const server: Server =
    options.tls !== undefined ? createTlsServer({ cert: options.tls.cert, key: options.tls.key }, onRequest) : createServer(onRequest);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      const address = server.address() as AddressInfo;
      resolve({
        url: `${options.tls !== undefined ? "https" : "http"}://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`,
        server,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
