// The documentation's promises: the README fits on a screen and links every page of docs/, every
// relative link (and #anchor) in them resolves, and the generated references match the code.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { GENERATED, rulesReference, specReference } from "../../scripts/docs.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const PAGES = [
  "README.md",
  ...readdirSync(join(ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`),
];

/** Markdown without fenced code blocks and inline code, where links are not links. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "").replace(/`[^`\n]*`/g, "");
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const withoutFences = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "");
  for (const match of withoutFences.matchAll(/^#{1,6} +(.+?) *#* *$/gm)) {
    const base = (match[1] ?? "")
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\- _]/gu, "")
      .replace(/ /g, "-");
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

function linksOf(markdown: string): string[] {
  const text = prose(markdown);
  return [...text.matchAll(/\]\(([^)\s]+)(?: "[^"]*")?\)/g), ...text.matchAll(/^\[[^\]]+\]: +(\S+)/gm)].map((match) => match[1] ?? "");
}

describe("documentation", () => {
  it("the README fits on a screen: at most 12 KB", () => {
    const bytes = statSync(join(ROOT, "README.md")).size;
    assert.ok(bytes <= 12 * 1024, `README.md is ${bytes} bytes; move detail into docs/`);
  });

  it("the README links every page of docs/", () => {
    const linked = new Set(linksOf(readFileSync(join(ROOT, "README.md"), "utf8")).map((link) => link.split("#")[0]));
    const missing = PAGES.filter((page) => page.startsWith("docs/") && !linked.has(page));
    assert.deepEqual(missing, [], "pages of docs/ the README does not link");
  });

  it("every relative link and anchor resolves", () => {
    const broken: string[] = [];
    for (const page of PAGES) {
      const from = join(ROOT, page);
      const own = readFileSync(from, "utf8");
      for (const link of linksOf(own)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // https:, mailto:: not checked offline
        const [path = "", anchor] = link.split("#");
        const target = path === "" ? from : resolve(dirname(from), decodeURIComponent(path));
        if (!target.startsWith(ROOT) || !existsSync(target)) {
          broken.push(`${page}: ${link} (no ${relative(ROOT, target)})`);
          continue;
        }
        if (anchor !== undefined && anchor !== "" && target.endsWith(".md") && !anchorsOf(readFileSync(target, "utf8")).has(anchor)) {
          broken.push(`${page}: ${link} (no heading #${anchor} in ${relative(ROOT, target)})`);
        }
      }
    }
    assert.deepEqual(broken, []);
  });

  it("the anchor rule is GitHub's (a known heading, a repeat, punctuation)", () => {
    assert.deepEqual(
      [...anchorsOf("# Local stack (diatonic dev)\n## What `render` writes\n## Notes\n## Notes\n```\n# not a heading\n```\n")],
      ["local-stack-diatonic-dev", "what-render-writes", "notes", "notes-1"],
    );
  });

  it("the generated references are current (npm run docs writes them)", () => {
    assert.equal(readFileSync(join(ROOT, GENERATED.spec), "utf8"), specReference(), `${GENERATED.spec} is stale: npm run docs`);
    assert.equal(readFileSync(join(ROOT, GENERATED.rules), "utf8"), rulesReference(), `${GENERATED.rules} is stale: npm run docs`);
  });
});
