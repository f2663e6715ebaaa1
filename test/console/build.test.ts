// The console's build: hashed script and stylesheet that index.html names, nothing inline (the CSP
// refuses inline code), a record of its inputs that says when it is stale, and a size budget.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { buildConsole, isStale } from "../../scripts/console/build.ts";
import { ConsoleAssets } from "../../src/gateway/console.ts";

/** What the console may weigh, uncompressed: measured 97 KiB of script (uPlot is half) and 9 of styles. */
const BUDGET_KIB = { js: 160, css: 24 } as const;

describe("the console's build", () => {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-console-build-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("writes index.html naming hashed assets, with no inline script or style, within its size budget", async (t) => {
    const out = join(dir, "dist");
    const built = await buildConsole(out);
    const names = Object.keys(built.files).sort();
    t.diagnostic(`console build: ${names.map((name) => `${name} ${((built.files[name] ?? 0) / 1024).toFixed(1)} KiB`).join(", ")}`);
    assert.equal(names.length, 4, names.join(", "));
    const script = names.find((name) => /^assets\/app-[A-Z0-9]{8}\.js$/.test(name));
    const style = names.find((name) => /^assets\/app-[A-Z0-9]{8}\.css$/.test(name));
    assert.ok(script !== undefined && style !== undefined, names.join(", "));
    assert.ok(names.some((name) => /^assets\/favicon-[A-Z0-9]{8}\.svg$/.test(name)));
    const html = readFileSync(join(out, "index.html"), "utf8");
    assert.match(html, new RegExp(`<script type="module" src="${script}"></script>`));
    assert.match(html, new RegExp(`<link rel="stylesheet" href="${style}" />`));
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, "every script is a file");
    assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, "no inline style or handler");
    assert.doesNotMatch(html, /\{\{/, "every placeholder filled");
    assert.ok((built.files[script] ?? 0) / 1024 <= BUDGET_KIB.js, `script ${built.files[script]} bytes`);
    assert.ok((built.files[style] ?? 0) / 1024 <= BUDGET_KIB.css, `styles ${built.files[style]} bytes`);
    assert.equal(isStale(out), false, "just built from these inputs");
    assert.ok(ConsoleAssets.load(out).built);
  });

  it("is stale where it was never built", () => {
    assert.equal(isStale(join(dir, "nothing-here")), true);
  });
});
