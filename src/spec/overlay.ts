/**
 * Environment overlays: deep merge of `environments.<env>` onto `spec`.
 * - objects merge key by key; `null` removes a key; an overlay that changes an object's
 *   discriminator (`kind` or `mode`) replaces the object, since the other form's fields do not apply;
 * - arrays of objects that all carry `name` merge by name (like a strategic merge), new names append;
 * - other arrays and scalars replace.
 * Each merged node remembers the document path it came from, so errors point at the right line.
 */

export type Path = readonly (string | number)[];

export interface Merged {
  readonly value: unknown;
  /** merged path key → document path it was taken from */
  readonly origins: Map<string, Path>;
}

export function pathKey(path: Path): string {
  return path.join("\u0000");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNamedList(value: unknown): value is Record<string, unknown>[] {
  return Array.isArray(value) && value.every((item) => isRecord(item) && typeof item["name"] === "string");
}

function record(origins: Map<string, Path>, path: Path, source: Path, value: unknown): void {
  origins.set(pathKey(path), source);
  if (Array.isArray(value)) {
    value.forEach((item, index) => record(origins, [...path, index], [...source, index], item));
  } else if (isRecord(value)) {
    for (const [key, child] of Object.entries(value)) record(origins, [...path, key], [...source, key], child);
  }
}

function merge(base: unknown, overlay: unknown, path: Path, overlaySource: Path, origins: Map<string, Path>): unknown {
  const switchesForm = (key: string) => isRecord(base) && isRecord(overlay) && key in overlay && key in base && base[key] !== overlay[key];
  if (isRecord(base) && isRecord(overlay) && !switchesForm("kind") && !switchesForm("mode")) {
    const removed = new Set(
      Object.entries(overlay)
        .filter(([, value]) => value === null)
        .map(([key]) => key),
    );
    const out: Record<string, unknown> = Object.fromEntries(Object.entries(base).filter(([key]) => !removed.has(key)));
    for (const [key, value] of Object.entries(overlay)) {
      if (value !== null) out[key] = merge(base[key], value, [...path, key], [...overlaySource, key], origins);
    }
    if (Object.keys(overlay).length > 0) origins.set(pathKey(path), overlaySource);
    return out;
  }
  if (isNamedList(base) && isNamedList(overlay)) {
    const out: unknown[] = [...base];
    overlay.forEach((item, overlayIndex) => {
      const index = out.findIndex((existing) => isRecord(existing) && existing["name"] === item["name"]);
      const target = index >= 0 ? index : out.length;
      out[target] = merge(index >= 0 ? out[index] : undefined, item, [...path, target], [...overlaySource, overlayIndex], origins);
    });
    return out;
  }
  record(origins, path, overlaySource, overlay);
  return overlay;
}

/**
 * Entries of the named list at `key` in `overlay` whose name the same list in `base` does not have:
 * where a list is closed (adapters), the merge would make them up from the overlay alone.
 */
export function unmatchedEntries(base: unknown, overlay: unknown, key: string): { readonly index: number; readonly name: string }[] {
  if (!isRecord(overlay) || !isNamedList(overlay[key])) return [];
  const known = new Set(namesIn(base, key));
  return overlay[key].flatMap((item, index) => (known.has(String(item["name"])) ? [] : [{ index, name: String(item["name"]) }]));
}

/** The names in the named list at `key` of `value` (none when it is not one). */
export function namesIn(value: unknown, key: string): string[] {
  return isRecord(value) && isNamedList(value[key]) ? value[key].map((item) => String(item["name"])) : [];
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
