import { createHash } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { parse as parseYaml } from "yaml";
import { InputError } from "../errors.ts";
import { PlatformDocument } from "../spec/schema.ts";
import { GatewayConfig } from "./config.ts";

/** Reads and validates a gateway config file: the schema the renderer writes, plus its cross-references. */
export async function loadGatewayConfig(file: string): Promise<GatewayConfig> {
  return (await readGatewayConfig(file)).config;
}

/** loadGatewayConfig, with the hash of the exact text it read (a FileWatcher baseline). */
export async function readGatewayConfig(file: string): Promise<{ config: GatewayConfig; hash: string }> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(
      code === "ENOENT" ? `gateway config ${file} does not exist` : `cannot read gateway config ${file}: ${(error as Error).message}`,
      "pass --config FILE: the config.yaml of the `gateway` ConfigMap that `diatonic render` writes",
    );
  }
  return { config: parseGatewayConfig(text, file), hash: textHash(text) };
}

export function parseGatewayConfig(text: string, file: string): GatewayConfig {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new InputError(`${file}: not valid YAML: ${(error as Error).message}`);
  }
  const platformKind = PlatformDocument.shape.kind.value;
  if ((document as { kind?: unknown } | null)?.kind === platformKind) {
    throw new InputError(
      `${file} is a platform spec (kind: ${platformKind}), not a gateway config (kind: GatewayConfig)`,
      `to run the platform on this machine: diatonic dev --spec ${file}; on a cluster the gateway reads the config.yaml of the \`gateway\` ConfigMap that \`diatonic render\` writes`,
    );
  }
  const parsed = GatewayConfig.safeParse(document);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.map(String).join(".") || "(document)"}: ${issue.message}`);
    throw new InputError(`${file}: not a valid GatewayConfig:\n${lines.join("\n")}`, "render it again with `diatonic render`, or fix the fields named above");
  }
  checkReferences(parsed.data, file);
  return parsed.data;
}

/** What the schema cannot say on its own: names that must point at something, names that must be unique. */
function checkReferences(config: GatewayConfig, file: string): void {
  const problems: string[] = [];
  const upstream = (where: string, name: string) => {
    if (!(name in config.upstreams)) problems.push(`${where}: upstream ${JSON.stringify(name)} is not in upstreams`);
  };
  upstream("baseModel.upstream", config.baseModel.upstream);
  if (config.embeddings) upstream("embeddings.upstream", config.embeddings.upstream);
  const names = new Set<string>([config.baseModel.name]);
  const routes = new Set<string>(["/v1"]);
  config.adapters.forEach((adapter, index) => {
    upstream(`adapters[${index}].upstream`, adapter.upstream);
    if (names.has(adapter.name)) problems.push(`adapters[${index}].name: ${JSON.stringify(adapter.name)} is used twice (or is the base model's name)`);
    if (routes.has(adapter.route)) problems.push(`adapters[${index}].route: ${adapter.route} is used twice (or is reserved)`);
    names.add(adapter.name);
    routes.add(adapter.route);
  });
  if (problems.length > 0) throw new InputError(`${file}: ${problems.join("; ")}`);
}

export interface FileWatcherOptions {
  /** Wait this long after the last change event before reading, so a multi-step swap is seen whole. @default 100 */
  readonly debounceMs?: number;
  /** Also re-read the files this often, for file systems where change events do not arrive. @default 5000 */
  readonly pollMs?: number;
}

/**
 * Calls `onChange` when the contents of any of the files change. It watches each file's directory,
 * not the file: Kubernetes updates a mounted ConfigMap or Secret by swapping the `..data` symlink,
 * which a watch on the old file never sees. Contents are compared by hash, so touches are ignored.
 */
export class FileWatcher {
  private readonly watchers: FSWatcher[] = [];
  private readonly hashes = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly poller: NodeJS.Timeout;
  private closed = false;
  private checking: Promise<void> = Promise.resolve();

  constructor(
    private readonly files: readonly string[],
    private readonly onChange: () => void,
    options: FileWatcherOptions = {},
  ) {
    const debounceMs = options.debounceMs ?? 100;
    for (const dir of new Set(files.map((file) => dirname(file)))) {
      try {
        const watcher = watch(dir, { persistent: false }, () => {
          clearTimeout(this.timer);
          this.timer = setTimeout(() => this.check(), debounceMs);
          this.timer.unref();
        });
        watcher.on("error", () => undefined);
        this.watchers.push(watcher);
      } catch {
        // A directory that does not exist yet (an optional Secret) is still covered by polling.
      }
    }
    this.poller = setInterval(() => this.check(), options.pollMs ?? 5000);
    this.poller.unref();
  }

  /**
   * Records the baseline, so only later changes call `onChange`: `loaded` gives the hashes of what
   * the caller read (textHash), others are read now. With `loaded`, the files are then checked at
   * once: a change made between the caller's read and this watcher's start would otherwise be missed.
   */
  async prime(loaded: ReadonlyMap<string, string> = new Map()): Promise<void> {
    for (const file of this.files) this.hashes.set(file, loaded.get(file) ?? (await hashOf(file)));
    if (loaded.size > 0) this.check();
  }

  private check(): void {
    this.checking = this.checking.then(async () => {
      if (this.closed) return;
      let changed = false;
      for (const file of this.files) {
        const hash = await hashOf(file);
        if (this.hashes.get(file) !== hash) {
          this.hashes.set(file, hash);
          changed = true;
        }
      }
      if (changed && !this.closed) this.onChange();
    });
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.poller);
    for (const watcher of this.watchers) watcher.close();
  }
}

/** The hash FileWatcher compares: of a file's text as the loaders read it (UTF-8). */
export function textHash(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

async function hashOf(file: string): Promise<string> {
  try {
    return textHash(await readFile(file, "utf8"));
  } catch (error) {
    return `missing:${(error as NodeJS.ErrnoException).code ?? "?"}`;
  }
}
