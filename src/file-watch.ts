// Following files that Kubernetes mounts from ConfigMaps and Secrets: the gateway's config and
// keys, the adapter agent's adapter set.
import { createHash } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";

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
