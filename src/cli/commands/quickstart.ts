import { join, resolve } from "node:path";
import { ExitCode } from "../../errors.ts";
import { buildTree } from "../../render/build.ts";
import { validationInput } from "../../validate/from-spec.ts";
import { rules, validateObjects } from "../../validate/index.ts";
import { writeTreeAtomically } from "../../write/atomic.ts";
import { parseFlags, type Command, type CommandIO } from "../command.ts";
import { summarize } from "./render.ts";
import { BUNDLED_EXAMPLE } from "../../spec/load.ts";
import { PACKAGE_ROOT, typablePath } from "../../paths.ts";

const CLI = join(PACKAGE_ROOT, "bin", "diatonic.js");

export const quickstartCommand: Command = {
  name: "quickstart",
  usage: "diatonic quickstart [--env ENV] [--out DIR]",
  async run(argv: readonly string[], io: CommandIO) {
    const { values } = parseFlags(this, argv, { env: { type: "string", default: "local" }, out: { type: "string", default: "out/lab" } });
    const started = performance.now();
    const out = resolve(io.cwd, values.out);
    const tree = buildTree({ file: BUNDLED_EXAMPLE, environment: values.env, cwd: io.cwd });
    writeTreeAtomically(out, tree.files);
    const { objects, env } = validationInput(tree);
    const validation = validateObjects(objects, env);
    const ms = (performance.now() - started).toFixed(0);
    const shown = typablePath(io.cwd, out);
    const example = typablePath(io.cwd, BUNDLED_EXAMPLE);
    const cli = `node ${typablePath(io.cwd, CLI)}`;
    // The commands to run next, as typed from here (the CLI and example are this checkout's), comments aligned.
    const next: [string, string][] = [
      [`kubectl kustomize ${shown}/overlays/${values.env}`, "the same objects, built by kubectl"],
      [`${cli} plan --spec ${example} --env production`, "GPU capacity plan"],
      [`${cli} render --spec ${example} --env production -o yaml`, "one YAML stream"],
      [`cat ${shown}/overlays/${values.env}/SECRETS.md`, "the Secrets to create first"],
    ];
    const width = Math.max(...next.map(([command]) => command.length));
    io.stdout.write(`diatonic quickstart: the lab example (${example})\n\n`);
    io.stdout.write(summarize(tree));
    io.stdout.write(
      [
        "",
        `rendered ${tree.result.placed.length} objects and validated them with ${rules.length} rules (schemas, Pod Security, wiring, network policies, GPU fit) in ${ms} ms: ${validation.errors} error(s), ${validation.warnings} warning(s)`,
        ...validation.findings.filter((f) => f.severity !== "info").map((f) => `  ${f.severity} ${f.ruleId} ${f.resource}: ${f.message}`),
        `wrote ${tree.files.size} files to ${shown}/ (base/ + overlays/ for ${[...new Set(tree.files.keys())]
          .filter((f) => f.endsWith("/kustomization.yaml") && f.startsWith("overlays/"))
          .map((f) => f.split("/")[1])
          .join(", ")})`,
        "",
        "next:",
        ...next.map(([command, what]) => `  ${command.padEnd(width)}   # ${what}`),
        "",
      ].join("\n"),
    );
    return validation.errors > 0 ? ExitCode.failure : ExitCode.ok;
  },
};
