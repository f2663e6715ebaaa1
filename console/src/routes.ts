// Hash routes (`#/playground/code`): the console is static files, so the gateway serves one page.

export const SECTIONS = [
  { id: "overview", label: "Overview" },
  { id: "adapters", label: "Adapters" },
  { id: "playground", label: "Playground" },
  { id: "documents", label: "Documents" },
  { id: "usage", label: "Usage" },
] as const;
export type Section = (typeof SECTIONS)[number]["id"];

/** A section, and what follows it (an adapter's name). */
export interface Route {
  readonly section: Section;
  readonly adapter: string | undefined;
}

export function routeOf(hash: string): Route {
  const [section, adapter] = hash.replace(/^#\/?/, "").split("/");
  const known = SECTIONS.find((candidate) => candidate.id === section);
  return { section: known?.id ?? "overview", adapter: adapter !== undefined && adapter !== "" ? decodeURIComponent(adapter) : undefined };
}

export function href(section: Section, adapter?: string): string {
  return `#/${section}${adapter !== undefined ? `/${encodeURIComponent(adapter)}` : ""}`;
}
