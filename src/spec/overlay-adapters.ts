import { closest, formatPath, type SpecIssue } from "./issues.ts";
import { namesIn, unmatchedEntries, type Path } from "./overlay.ts";

/** Places a problem in the spec file: its document path, message and fix. */
export type PlaceIssue = (path: Path, message: string, fix: string) => SpecIssue;

/**
 * An environment's `adapters` merge by name onto the adapters the base defines, so each entry must
 * name one, once. An entry for an adapter the base no longer has would otherwise come back as a bare
 * adapter (no prompt, no LoRA), or, with `lora: null`, fail as "expected object, got null"; one
 * without a name would be appended and reported at the base's line; a second entry for a name would
 * silently win; and `adapters: []` would change nothing.
 */
export function overlayAdapterIssues(
  spec: unknown,
  overlay: Record<string, unknown> | undefined,
  env: string,
  place: PlaceIssue,
): SpecIssue[] {
  const entries = overlay?.["adapters"];
  if (!Array.isArray(entries)) return [];
  const list = ["environments", env, "adapters"];
  const defined = namesIn(spec, "adapters");
  if (entries.length === 0) {
    return [
      place(
        list,
        "an empty list changes nothing here: an environment's adapters merge by name onto spec.adapters",
        `to serve no adapters in environment ${env}, write adapters: null; to change some, list them by name; otherwise remove ${formatPath(list)}`,
      ),
    ];
  }
  const known = defined.length > 0 ? ` (spec.adapters has: ${defined.slice(0, 8).join(", ")}${defined.length > 8 ? ", …" : ""})` : "";
  const issues: SpecIssue[] = [];
  const seen = new Map<string, number>();
  const duplicates = new Set<number>();
  entries.forEach((entry: unknown, index) => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) return; // the schema says what it must be
    const at = [...list, index, "name"];
    const name: unknown = (entry as Record<string, unknown>)["name"];
    if (name === undefined || name === null) {
      // Placed at the entry (it has no name line), as every schema error about a missing key is.
      issues.push(
        place(
          at,
          "is required: an environment's adapters merge by name onto spec.adapters, and this entry names none",
          `add name: <the adapter to change> to ${formatPath([...list, index])}${known}`,
        ),
      );
    } else if (typeof name !== "string") {
      issues.push(
        place(
          at,
          `expected the name of an adapter in spec.adapters, got ${JSON.stringify(name)}`,
          `name the adapter to change, as a string${known}`,
        ),
      );
    } else if (seen.has(name)) {
      issues.push(
        place(
          at,
          `adapter name ${JSON.stringify(name)} is already used by ${formatPath([...list, seen.get(name) ?? 0])}`,
          "merge the two entries into one: an environment changes each adapter once",
        ),
      );
      duplicates.add(index);
    } else {
      seen.set(name, index);
    }
  });
  for (const { index, name } of unmatchedEntries(spec, overlay, "adapters")) {
    if (duplicates.has(index)) continue;
    const at = [...list, index];
    const near = closest(name, defined);
    issues.push(
      place(
        at,
        `adapter ${JSON.stringify(name)} is not in spec.adapters${near !== undefined && near !== name ? ` (did you mean ${JSON.stringify(near)}?)` : ""}: an environment can change an adapter the base defines, not add one`,
        `remove ${formatPath(at)}, or add an adapter named ${name} to spec.adapters`,
      ),
    );
  }
  return issues.sort((a, b) => a.line - b.line || a.column - b.column);
}
