import { resolve } from "node:path";
import { ExitCode, InputError } from "../../errors.ts";
import { buildEnvironment, buildTree, type EnvironmentBuild } from "../../render/build.ts";
import { resourceId } from "../../render/schema-check.ts";
import { formatSpecWarning } from "../../spec/load.ts";
import { writeTreeAtomically } from "../../write/atomic.ts";
import { toYamlStream } from "../../write/yaml.ts";
import { parseFlags, type Command, type CommandIO } from "../command.ts";

/** The first few names and how many more: a summary line stays one readable line at 1,000 adapters. */
export function someNames(names: readonly string[], shown = 5): string {
  if (names.length <= shown + 1) return names.join(", ");
  return `${names.slice(0, shown).join(", ")} and ${names.length - shown} more`;
}

export function summarize(build: EnvironmentBuild): string {
  const { result, platform } = build;
  const counts = new Map<string, number>();
  for (const p of result.placed) counts.set(p.object.kind, (counts.get(p.object.kind) ?? 0) + 1);
  const kinds = [...counts.entries()].map(([kind, n]) => `${n} ${kind}`).join(", ");
  const lines = [
    `platform ${platform.name}, environment ${platform.environment}: ${result.placed.length} objects (${kinds})`,
    `  engine ${platform.spec.model.engine.kind} serving ${platform.spec.model.name} with ${platform.spec.adapters.length} adapters: ${someNames(platform.spec.adapters.map((a) => a.name))}`,
    "  secrets to create before apply (never rendered):",
    ...result.secrets.map((s) => `    ${s.namespace}/${s.name} key ${s.key}: ${s.purpose}`),
    ...result.notes.map((n) => `  note: ${n}`),
    ...platform.warnings.map((w) => `  warning: ${formatSpecWarning(w)}`),
  ];
  return `${lines.join("\n")}\n`;
}

export const renderCommand: Command = {
  name: "render",
  usage: "diatonic render [--spec FILE] --env ENV (--out DIR | -o yaml)",
  async run(argv: readonly string[], io: CommandIO) {
    const { values } = parseFlags(this, argv, {
      spec: { type: "string", default: "platform.yaml" },
      env: { type: "string" },
      out: { type: "string" },
      output: { type: "string", short: "o" },
    });
    if (!values.env) throw new InputError("missing required flag --env", `usage: ${this.usage}`);
    if (values.output !== undefined && values.output !== "yaml") {
      throw new InputError(
        `-o ${JSON.stringify(values.output)} is not supported`,
        "use -o yaml for a YAML stream, or --out DIR for a Kustomize tree",
      );
    }
    if ((values.out === undefined) === (values.output === undefined)) {
      throw new InputError("pass exactly one of --out DIR and -o yaml", `usage: ${this.usage}`);
    }
    const options = { file: resolve(io.cwd, values.spec), shown: values.spec, environment: values.env, cwd: io.cwd };
    if (values.output === "yaml") {
      const build = buildEnvironment(options);
      io.stdout.write(toYamlStream(build.result.placed.map((p) => p.object)));
      io.stderr.write(summarize(build));
      return ExitCode.ok;
    }
    const out = resolve(io.cwd, values.out ?? "");
    const tree = buildTree(options);
    writeTreeAtomically(out, tree.files);
    io.stdout.write(summarize(tree));
    io.stdout.write(
      `wrote ${tree.files.size} files to ${values.out}; build with: kubectl kustomize ${values.out}/overlays/${values.env}\n`,
    );
    if (io.env["DIATONIC_VERBOSE"] === "1") {
      for (const p of tree.result.placed) io.stdout.write(`  ${resourceId(p.object)}\n`);
    }
    return ExitCode.ok;
  },
};
