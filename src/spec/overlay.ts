/**
 * Environment overlays: deep merge of `environments.<env>` onto `spec`.
 * - objects merge key by key; `null` removes a key; an overlay that changes an object's
 *   discriminator (`kind` or `mode`) replaces the object, since the other form's fields do not apply;
 * - `adapters` merges by name (like a strategic merge): an entry changes the adapter of its name, and
 *   an entry with a new name (or none) is appended, for the loader to refuse;
 * - every other list, an empty one included, and every scalar replaces what the base had.
 * Each merged node remembers the document path it came from, so errors point at the right line.
 */

export type Path = readonly (string | number)[];

export interface Merged {
  readonly value: unknown;
  /** merged path key → document path it was taken from */
  readonly origins: Map<string, Path>;
}

/** The spec's lists that an overlay merges by `name`; every other list is replaced whole. */
const MERGED_BY_NAME = ["adapters"] as const;

export function pathKey(path: Path): string {
  return path.join("\u0000");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function nameOf(value: unknown): string | undefined {
  return isRecord(value) && typeof value["name"] === "string" ? value["name"] : undefined;
}

function mergesByName(path: Path): boolean {
  return path.length === 1 && (MERGED_BY_NAME as readonly (string | number)[]).includes(path[0] ?? "");
}

function record(origins: Map<string, Path>, path: Path, source: Path, value: unknown): void {
  origins.set(pathKey(path), source);
  if (Array.isArray(value)) {
    value.forEach((item, index) => record(origins, [...path, index], [...source, index], item));
  } else if (isRecord(value)) {
    for (const [key, child] of Object.entries(value)) record(origins, [...path, key], [...source, key], child);
  }
}

/**
 * Drops what the base recorded below `path`, whose value the overlay replaced or removed: a key the
 * overlay's value lacks is then placed at the overlay, not at the base's line it no longer comes from.
 */
function forget(origins: Map<string, Path>, path: Path, replaced: unknown): void {
  // Walks the replaced value, not every recorded path: an overlay that sets `lora: null` on each of
  // 1,000 adapters would otherwise scan the whole map 1,000 times.
  if (Array.isArray(replaced)) {
    replaced.forEach((item, index) => {
      origins.delete(pathKey([...path, index]));
      forget(origins, [...path, index], item);
    });
  } else if (isRecord(replaced)) {
    for (const [key, child] of Object.entries(replaced)) {
      origins.delete(pathKey([...path, key]));
      forget(origins, [...path, key], child);
    }
  }
}

function merge(base: unknown, overlay: unknown, path: Path, overlaySource: Path, origins: Map<string, Path>): unknown {
  const switchesForm = (key: string) => isRecord(base) && isRecord(overlay) && key in overlay && key in base && base[key] !== overlay[key];
  if (isRecord(base) && isRecord(overlay) && !switchesForm("kind") && !switchesForm("mode")) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(base)) if (overlay[key] !== null) out[key] = value;
    for (const [key, value] of Object.entries(overlay)) {
      if (value !== null) {
        out[key] = merge(base[key], value, [...path, key], [...overlaySource, key], origins);
      } else {
        // A required key removed here is reported at the overlay's `key: null`.
        forget(origins, [...path, key], base[key]);
        origins.set(pathKey([...path, key]), [...overlaySource, key]);
      }
    }
    if (Object.keys(overlay).length > 0) origins.set(pathKey(path), overlaySource);
    return out;
  }
  if (mergesByName(path) && Array.isArray(base) && Array.isArray(overlay)) {
    const out: unknown[] = [...base];
    overlay.forEach((item, overlayIndex) => {
      const name = nameOf(item);
      const index = name === undefined ? -1 : out.findIndex((existing) => nameOf(existing) === name);
      const target = index >= 0 ? index : out.length;
      out[target] = merge(index >= 0 ? out[index] : undefined, item, [...path, target], [...overlaySource, overlayIndex], origins);
    });
    return out;
  }
  forget(origins, path, base);
  record(origins, path, overlaySource, overlay);
  return overlay;
}

/**
 * Entries of the list at `key` in `overlay` that name no entry of the same list in `base`: where a
 * list is closed (adapters), the merge would make them up from the overlay alone. Entries without a
 * name are not listed here.
 */
export function unmatchedEntries(base: unknown, overlay: unknown, key: string): { readonly index: number; readonly name: string }[] {
  if (!isRecord(overlay) || !Array.isArray(overlay[key])) return [];
  const known = new Set(namesIn(base, key));
  return overlay[key].flatMap((item: unknown, index) => {
    const name = nameOf(item);
    return name === undefined || known.has(name) ? [] : [{ index, name }];
  });
}

/** The names in the list at `key` of `value` (entries without a string `name` left out). */
export function namesIn(value: unknown, key: string): string[] {
  const list = isRecord(value) ? value[key] : undefined;
  return Array.isArray(list) ? list.flatMap((item: unknown) => nameOf(item) ?? []) : [];
}

/** Merges `overlay` (found at `overlaySource` in the document) onto `base` (found at `baseSource`). */
export function applyOverlay(base: unknown, baseSource: Path, overlay: unknown, overlaySource: Path): Merged {
  const origins = new Map<string, Path>();
  record(origins, [], baseSource, base);
  const value = overlay === undefined ? base : merge(base, overlay, [], overlaySource, origins);
  return { value, origins };
}

/** The document path for a merged path: the deepest recorded ancestor, plus the rest of the path. */
export function originOf(merged: Merged, path: Path): Path {
  for (let length = path.length; length >= 0; length--) {
    const source = merged.origins.get(pathKey(path.slice(0, length)));
    if (source !== undefined) return [...source, ...path.slice(length)];
  }
  return path;
}
