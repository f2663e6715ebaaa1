// Its own module: render and the adapter set show URLs without loading the downloader (and tar).

/**
 * The URL as messages, logs and status show it: without user info, and with a query (where signed
 * URLs keep their token) shown as `?…`. The spec refuses user info; a signed URL's query is valid.
 */
export function shownUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "(an unparsable URL)";
  }
  const query = parsed.search !== "";
  parsed.username = "";
  parsed.password = "";
  parsed.search = "";
  parsed.hash = "";
  return `${parsed.href}${query ? "?…" : ""}`;
}
