import { createHash } from "node:crypto";

export function contentHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}

/**
 * A chunk's id: a UUID (Qdrant's point id format) derived from its source, position and content, so
 * re-ingesting an unchanged chunk gives the same id and a changed one a new id.
 */
export function chunkId(source: string, index: number, hash: string): string {
  const hex = createHash("sha256").update(`${source}\u0000${index}\u0000${hash}`).digest("hex");
  // Version 5-style layout (name-based, SHA) so the value is a well-formed UUID.
  const variant = ((Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
