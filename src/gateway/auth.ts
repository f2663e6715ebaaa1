import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { InputError } from "../errors.ts";
import type { GatewayConfig } from "./config.ts";
import { textHash } from "../file-watch.ts";
import { ErrorType, GatewayError } from "./errors.ts";

/** The keys file mounted from a Secret: only hashes (`printf %s "$KEY" | sha256sum`), never keys. */
export const KeysFile = z.strictObject({
  keys: z.array(
    z.strictObject({
      sha256: z
        .string()
        .regex(/^[0-9a-fA-F]{64}$/, "must be the hex SHA-256 of the key (64 characters)")
        .transform((hex) => hex.toLowerCase()),
      tenant: z.string().min(1),
      adapters: z.array(z.string().min(1)).min(1),
      scopes: z.array(z.enum(["inference", "admin"])).default(["inference"]),
    }),
  ),
});
export type KeysFile = z.infer<typeof KeysFile>;

export type Scope = "inference" | "admin";

/** Who is calling: the tenant of a key, or an anonymous caller where auth allows one. */
export interface Principal {
  readonly tenant: string;
  /** Rate limits are kept per key: a short prefix of its hash, or `anonymous`. */
  readonly keyId: string;
  readonly adapters: "*" | ReadonlySet<string>;
  readonly scopes: ReadonlySet<Scope>;
}

const ANONYMOUS: Principal = { tenant: "anonymous", keyId: "anonymous", adapters: "*", scopes: new Set(["inference"]) };
/** With auth disabled there is nothing to check, admin calls included (`diatonic dev` without --api-key). */
const UNCHECKED: Principal = { ...ANONYMOUS, scopes: new Set(["inference", "admin"]) };

interface StoredKey {
  /** The key's SHA-256 (32 bytes, from the file's lowercase hex). */
  readonly hash: Buffer;
  readonly principal: Principal;
}

export class KeyStore {
  /** The tenants the keys belong to. */
  readonly tenants: ReadonlySet<string>;

  private constructor(
    private readonly keys: readonly StoredKey[],
    /** textHash of the keys file as read, when loaded from one. */
    readonly sourceHash?: string,
  ) {
    this.tenants = new Set(keys.map((key) => key.principal.tenant));
  }

  static readonly empty = new KeyStore([]);

  static fromFile(keys: KeysFile, sourceHash?: string): KeyStore {
    return new KeyStore(
      keys.keys.map((key) => ({
        hash: Buffer.from(key.sha256, "hex"),
        principal: {
          tenant: key.tenant,
          keyId: key.sha256.slice(0, 12),
          adapters: key.adapters.includes("*") ? "*" : new Set(key.adapters),
          scopes: new Set(key.scopes),
        },
      })),
      sourceHash,
    );
  }

  /** Loads the keys file. A missing file is an empty store unless auth is required. */
  static async load(config: GatewayConfig): Promise<KeyStore> {
    const file = config.auth.keysFile;
    if (config.auth.mode === "disabled") return KeyStore.empty;
    if (file === undefined) {
      if (config.auth.mode === "required")
        throw new InputError("auth.mode is required but auth.keysFile is not set", "set auth.keysFile to the mounted keys file");
      return KeyStore.empty;
    }
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT" && config.auth.mode === "optional") return KeyStore.empty;
      throw new InputError(`cannot read API keys file ${file}: ${(error as Error).message}`, "create the keys Secret as the README shows");
    }
    const parsed = KeysFile.safeParse(parseYaml(text) ?? { keys: [] });
    if (!parsed.success) {
      const lines = parsed.error.issues.map((issue) => `  ${issue.path.map(String).join(".")}: ${issue.message}`);
      throw new InputError(`${file}: not a valid keys file:\n${lines.join("\n")}`, "each key needs {sha256, tenant, adapters, scopes}");
    }
    return KeyStore.fromFile(parsed.data, textHash(text));
  }

  get size(): number {
    return this.keys.length;
  }

  /** Every stored hash is compared, in constant time (crypto.timingSafeEqual), so timing says nothing about which one matched. */
  find(key: string): Principal | undefined {
    const hash = createHash("sha256").update(key).digest();
    let found: Principal | undefined;
    for (const stored of this.keys) {
      if (timingSafeEqual(stored.hash, hash) && found === undefined) found = stored.principal;
    }
    return found;
  }
}

/** Whether a character of a header value (Latin-1) is one that `\s` and trim() take as space. */
function isSpace(code: number): boolean {
  return code <= 0x20 || code === 0xa0;
}

function presentedKey(headers: Readonly<Record<string, string | string[] | undefined>>): string | undefined {
  const authorization = headers.authorization;
  if (typeof authorization === "string") {
    // The usual form, `Bearer <key>` with one space and nothing around it, without a regular
    // expression (this runs on every request); any other spelling goes through the pattern.
    if (
      authorization.startsWith("Bearer ") &&
      !isSpace(authorization.charCodeAt(7)) &&
      !isSpace(authorization.charCodeAt(authorization.length - 1))
    ) {
      return authorization.slice(7);
    }
    const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
    return match?.[1]?.trim();
  }
  const apiKey = headers["x-api-key"] ?? headers["api-key"];
  return typeof apiKey === "string" ? apiKey.trim() : undefined;
}

/** Whether the request presents a key at all (valid or not). */
export function presentsKey(headers: Readonly<Record<string, string | string[] | undefined>>): boolean {
  const key = presentedKey(headers);
  return key !== undefined && key !== "";
}

/**
 * A request admitted without a key, unless a browser sent it from another site: any page its user
 * opens could otherwise post to a keyless gateway on localhost (a text/plain POST needs no CORS
 * preflight) and write or delete RAG documents, or spend its GPUs. Browsers send Origin on such
 * requests; SDKs, curl and the console (same origin) are not affected. A key, which a page on
 * another site cannot add without the preflight the gateway never grants, lets the request through.
 */
function keyless(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  principal: Principal,
  keylessHosts: readonly string[],
): Principal {
  const host = headers["host"];
  checkHost(host, keylessHosts);
  const origin = headers["origin"];
  if (origin === undefined) return principal;
  let from: string | undefined;
  try {
    from = typeof origin === "string" && origin !== "null" ? new URL(origin).host : undefined;
  } catch {
    from = undefined;
  }
  // Behind a proxy that rewrites Host, the host the browser used is in X-Forwarded-Host.
  const forwarded = headers["x-forwarded-host"];
  // URL lower-cases the Origin's host; a Host header may come in any case.
  if (
    from !== undefined &&
    (from === (typeof host === "string" ? host.toLowerCase() : undefined) ||
      (typeof forwarded === "string" && forwarded.split(",")[0]?.trim().toLowerCase() === from))
  )
    return principal;
  throw new GatewayError(
    403,
    ErrorType.permission,
    `a browser request from another site (Origin ${typeof origin === "string" ? origin.slice(0, 200) : "?"}) needs an API key: this gateway admits keyless requests only from programs and its own console`,
    "cross_origin_without_key",
  );
}

/** The host name of a Host header (no port, no brackets, no trailing dot, lower case); undefined if it is not one. */
function hostName(host: string): string | undefined {
  try {
    return new URL(`http://${host}`).hostname
      .replace(/^\[|\]$/g, "")
      .replace(/\.$/, "")
      .toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * Names no one outside can point at another address: IP addresses, localhost, a single label (a
 * Service in the same namespace), the cluster's own (`*.svc`, `*.cluster.local`), and the special-use
 * suffixes that public DNS never serves (`.internal`, `.local`, `.home.arpa`).
 */
function internalName(name: string): boolean {
  return (
    isIP(name) !== 0 ||
    name === "localhost" ||
    name.endsWith(".localhost") ||
    !name.includes(".") ||
    name.endsWith(".svc") ||
    name.endsWith(".cluster.local") ||
    // Names kept out of public DNS: a network's own, not one an outside site can re-point.
    name.endsWith(".internal") ||
    name.endsWith(".local") ||
    name.endsWith(".home.arpa")
  );
}

/**
 * A request admitted without a key must name this gateway by an address no one else controls (see
 * internalName) or by one of server.keylessHosts (render adds the ingress host). Otherwise a page on
 * a site whose name its owner re-points at 127.0.0.1 (DNS rebinding) would be same-origin with a
 * keyless gateway on localhost, and could read its answers and write its documents.
 */
function checkHost(host: string | string[] | undefined, keylessHosts: readonly string[]): void {
  if (typeof host !== "string" || host === "") return;
  const name = hostName(host);
  if (name !== undefined && (internalName(name) || keylessHosts.some((allowed) => allowed.toLowerCase() === name))) return;
  throw new GatewayError(
    403,
    ErrorType.permission,
    `a request without an API key must name this gateway by its IP address, localhost, a cluster Service name or one of the config's server.keylessHosts, not ${JSON.stringify(host.slice(0, 200))} (this guards a keyless gateway against DNS rebinding): send an API key, or add the host name to server.keylessHosts (render adds the spec's ingress.host)`,
    "host_not_allowed",
  );
}

/**
 * `required`: every request needs a valid key. `optional`: a request without a key is anonymous, but
 * a key that is presented must be valid. `disabled`: keys are ignored.
 */
export function authenticate(
  mode: GatewayConfig["auth"]["mode"],
  store: KeyStore,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  /** Host names, besides internal ones, by which keyless requests may name the gateway (server.keylessHosts). */
  keylessHosts: readonly string[] = [],
): Principal {
  if (mode === "disabled") return keyless(headers, UNCHECKED, keylessHosts);
  const key = presentedKey(headers);
  if (key === undefined || key === "") {
    if (mode === "optional") return keyless(headers, ANONYMOUS, keylessHosts);
    throw new GatewayError(401, ErrorType.authentication, "missing API key: send `Authorization: Bearer <key>`", "missing_api_key");
  }
  const principal = store.find(key);
  if (principal === undefined) throw new GatewayError(401, ErrorType.authentication, "invalid API key", "invalid_api_key");
  return principal;
}

export function requireScope(principal: Principal, scope: Scope): void {
  if (!principal.scopes.has(scope)) {
    throw new GatewayError(403, ErrorType.permission, `this API key lacks the ${scope} scope`, "missing_scope");
  }
}

/** The tenants whose requests a config and its keys can admit: the keys' own, and `anonymous` where keys are not required. */
export function admittedTenants(mode: GatewayConfig["auth"]["mode"], store: KeyStore): ReadonlySet<string> {
  return mode === "required" ? store.tenants : new Set([...store.tenants, ANONYMOUS.tenant]);
}

export function mayUse(principal: Principal, model: string): boolean {
  return principal.adapters === "*" || principal.adapters.has(model);
}
