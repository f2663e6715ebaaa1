import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, relative, sep } from "node:path";
import { gzipSync } from "node:zlib";
import { PACKAGE_ROOT } from "../paths.ts";

/** Where `scripts/console/build.ts` writes the console: the same place from src/gateway and dist/gateway. */
export const CONSOLE_DIR = `${join(PACKAGE_ROOT, "console", "dist")}/`;

export const CONSOLE_PATH = "/console";

/**
 * The console's own scripts and styles only, no inline code, and it talks to this origin alone.
 * CSSOM writes from script (how uPlot and Preact size things) are not inline styles and stay allowed.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONSOLE_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
  ".map": "application/json",
  ".woff2": "font/woff2",
};

/** Names the build gives hashed assets (`app-3F2A9C1B.js`): their content never changes, so they are cached for good. */
const HASHED = /-[A-Z0-9]{8}\.[a-z0-9]+$/;

interface Asset {
  readonly body: Buffer;
  /** Only where it is smaller. */
  readonly gzip: Buffer | undefined;
  readonly contentType: string;
  readonly etag: string;
  readonly cacheControl: string;
}

/** Every file under `dir` but dot files (the build's record of its inputs is not served). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    if (entry.startsWith(".")) return [];
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

/**
 * The built console, held in memory (a few hundred KB) and served under /console/: index.html is
 * revalidated on every load (`no-cache`, with an ETag) so a new build shows at once; the hashed
 * scripts and styles it names are immutable. Every answer carries the console's strict CSP.
 */
export class ConsoleAssets {
  private constructor(
    private readonly assets: ReadonlyMap<string, Asset>,
    /** Why there is no console to serve, where there is none. */
    private readonly missing: string | undefined,
  ) {}

  /** Reads the built console from `dir`; a missing build is served as a 503 that says how to build it. */
  static load(dir: string = CONSOLE_DIR): ConsoleAssets {
    if (!existsSync(join(dir, "index.html"))) {
      return new ConsoleAssets(
        new Map(),
        `the web console is not built (no ${join(dir, "index.html")}): run \`npm run deps\` or \`node --import tsx scripts/console/build.ts\`, then restart the gateway`,
      );
    }
    const assets = new Map<string, Asset>();
    for (const file of filesUnder(dir)) {
      const name = relative(dir, file).split(sep).join("/");
      const body = readFileSync(file);
      const compressed = gzipSync(body, { level: 9 });
      assets.set(name, {
        body,
        gzip: compressed.length < body.length * 0.9 ? compressed : undefined,
        contentType: CONTENT_TYPES[extname(name)] ?? "application/octet-stream",
        etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
        cacheControl: HASHED.test(name) ? "public, max-age=31536000, immutable" : "no-cache",
      });
    }
    return new ConsoleAssets(assets, undefined);
  }

  get built(): boolean {
    return this.missing === undefined;
  }

  /** Answers a request whose path is /console or starts with /console/. */
  serve(req: IncomingMessage, path: string, res: ServerResponse): void {
    if (req.method !== "GET" && req.method !== "HEAD") return plain(res, 405, "the console takes GET or HEAD\n", { allow: "GET, HEAD" });
    // Relative asset URLs in index.html need the trailing slash.
    if (path === CONSOLE_PATH) return plain(res, 308, "moved to /console/\n", { location: `${CONSOLE_PATH}/` });
    if (this.missing !== undefined) return plain(res, 503, `${this.missing}\n`);
    const name = path === `${CONSOLE_PATH}/` ? "index.html" : path.slice(CONSOLE_PATH.length + 1);
    const asset = this.assets.get(name);
    if (asset === undefined) return plain(res, 404, `no console file ${path}\n`);
    const headers: Record<string, string | number> = {
      ...SECURITY_HEADERS,
      "content-type": asset.contentType,
      "cache-control": asset.cacheControl,
      etag: asset.etag,
      vary: "accept-encoding",
    };
    if (req.headers["if-none-match"] === asset.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    const gzip = asset.gzip !== undefined && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    const body = gzip ? (asset.gzip as Buffer) : asset.body;
    if (gzip) headers["content-encoding"] = "gzip";
    headers["content-length"] = body.length;
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? undefined : body);
  }
}
