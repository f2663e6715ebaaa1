// Seeded random values full of YAML's awkward characters, for differential tests of our YAML writer and reader against js-yaml.
/** The seeded generator the benches use (mulberry32), so a failure replays. */
export { seeded as random } from "../../bench/routing-traffic.ts";

/** Pieces that decide a scalar's style: indicators, spaces, breaks, look-alikes of other types, escapes. */
const PIECES = [
  "a",
  "Z",
  "9",
  "0",
  "-",
  "?",
  ":",
  ",",
  "[",
  "]",
  "{",
  "}",
  "#",
  "&",
  "*",
  "!",
  "|",
  ">",
  "'",
  '"',
  "%",
  "@",
  "`",
  " ",
  "  ",
  "\n",
  "\n\n",
  "\t",
  "\r",
  "\0",
  "\x1b",
  "\x7f",
  "\x85",
  "\xa0",
  "\u2028",
  "\ufeff",
  "é",
  "日本",
  "😀",
  "\ud800",
  "true",
  "False",
  "yes",
  "off",
  "null",
  "~",
  "NULL",
  "0x1f",
  "0o17",
  "017",
  "1e3",
  "1_000",
  ".inf",
  "-.Inf",
  ".nan",
  "12:30",
  "2024-01-01",
  "http://x:80/p",
  "--- ",
  "...",
  "=",
  "<<",
  "a: b",
  "a #b",
  "a#b",
  " x",
  "x ",
  "- x",
  "/",
  ".",
  "(",
  ")",
  "+",
  "_",
];

export function randomString(next: () => number): string {
  const length = Math.floor(next() * 6);
  let text = "";
  for (let i = 0; i < length; i++) text += PIECES[Math.floor(next() * PIECES.length)];
  return text;
}

export function randomValue(next: () => number, depth: number): unknown {
  const roll = next();
  if (depth > 3 || roll < 0.45) {
    const kind = Math.floor(next() * 8);
    if (kind === 0) return null;
    if (kind === 1) return next() < 0.5;
    if (kind === 2)
      return [0, -0, 1, -7, 0.5, 1e21, 1e-7, 12345678901234, Number.NaN, Number.POSITIVE_INFINITY, -1.5][Math.floor(next() * 11)];
    if (kind === 3) return undefined;
    return randomString(next);
  }
  if (roll < 0.7) return Array.from({ length: Math.floor(next() * 4) }, () => randomValue(next, depth + 1));
  const object: Record<string, unknown> = {};
  for (let i = Math.floor(next() * 5); i > 0; i--)
    object[next() < 0.6 ? `k${Math.floor(next() * 9)}` : randomString(next)] = randomValue(next, depth + 1);
  return object;
}
