// Runs every test file under test/ and src/ with node's test runner (Node 20 has no --test globs).
// Arguments narrow the run to those files or folders.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function collect(path, out) {
  if (statSync(path).isDirectory()) {
    for (const entry of readdirSync(path).sort()) {
      if (entry === "node_modules" || entry.startsWith(".")) continue;
      collect(join(path, entry), out);
    }
  } else if (path.endsWith(".test.ts")) {
    out.push(path);
  }
  return out;
}

const roots = process.argv.slice(2);
const files = (roots.length > 0 ? roots : ["test", "src"]).flatMap((root) => collect(root, []));
if (files.length === 0) {
  console.error("run-tests: no test files found");
  process.exit(2);
}
const reporter = process.stdout.isTTY ? "spec" : "spec";
const result = spawnSync(process.execPath, ["--import", "tsx", "--test", `--test-reporter=${reporter}`, "--test-concurrency=2", ...files], {
  stdio: "inherit",
  env: { ...process.env, NODE_NO_WARNINGS: "1" },
});
process.exit(result.status ?? 1);
