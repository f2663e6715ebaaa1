import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { TREE_MARKER, writeTreeAtomically } from "../../src/write/atomic.ts";

function readTree(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (path: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) walk(full);
      else files.set(relative(dir, full), readFileSync(full, "utf8"));
    }
  };
  walk(dir);
  return files;
}

describe("writeTreeAtomically", () => {
  it("replaces a tree it wrote with exactly the new files, keeping unchanged files as they were and leaving nothing beside it", () => {
    const parent = mkdtempSync(join(tmpdir(), "diatonic-atomic-"));
    const target = join(parent, "out");
    const first = new Map([
      [TREE_MARKER, "{}\n"],
      ["base/a.yaml", "a: 1\n"],
      ["base/adapters/x.yaml", "x: 1\n"],
      ["overlays/local/gone.yaml", "gone\n"],
    ]);
    writeTreeAtomically(target, first);
    assert.deepEqual(readTree(target), first);
    const unchanged = statSync(join(target, "base/adapters/x.yaml"));
    // A reader edited one file of the written tree: the next render writes it again.
    writeFileSync(join(target, "base/a.yaml"), "a: edited\n");

    const second = new Map([
      [TREE_MARKER, "{}\n"],
      ["base/a.yaml", "a: 1\n"],
      ["base/adapters/x.yaml", "x: 1\n"],
      ["base/adapters/y.yaml", "y: 1\n"],
    ]);
    writeTreeAtomically(target, second);
    assert.deepEqual(readTree(target), second);
    const kept = statSync(join(target, "base/adapters/x.yaml"));
    assert.equal(kept.ino, unchanged.ino, "an unchanged file is the same file");
    assert.equal(kept.nlink, 1, "and the old tree holds no link to it any more");
    assert.deepEqual(readdirSync(parent), ["out"], "no temp or retired tree left beside it");
  });
});
