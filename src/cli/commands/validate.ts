import { resolve } from "node:path";
import { ExitCode, InputError } from "../../errors.ts";
import { formatResult, FORMATS } from "../../validate/format.ts";
import { validateObjects } from "../../validate/index.ts";
import { readObjects, STDIN, type ReadObjects } from "../../validate/read.ts";
import { resourceId } from "../../render/schema-check.ts";
import { oneOf, parseFlags, type Command, type CommandIO } from "../command.ts";

/** A diatonic spec passed as a PATH would pass as an object of unknown kind: say how a spec is validated. */
function refuseSpecs(read: ReadObjects): void {
  const spec = read.objects.find((object) => object.kind === "Platform" && object.apiVersion.startsWith("diatonic.ai/"));
  if (spec === undefined) return;
  const file = read.files.get(resourceId(spec));
  const declared: unknown = (spec as { environments?: unknown }).environments;
  const envs = typeof declared === "object" && declared !== null ? Object.keys(declared) : [];
  const env = envs.length > 0 ? `ENV (one of: ${envs.join(", ")})` : "ENV";
  const stdin = file === undefined || file === "<stdin>";
  throw new InputError(
    `${stdin ? "standard input" : file} is a diatonic spec (kind: Platform), not rendered Kubernetes objects`,
    `validate a spec with --spec, which renders the environment first: diatonic validate --spec ${stdin ? "FILE" : file} --env ${env}${stdin ? " (save the spec to FILE first)" : ""}`,
  );
}

export const validateCommand: Command = {
  name: "validate",
  usage: "diatonic validate [PATH ... | -] [--spec FILE --env ENV] [--format human|json|sarif]",
  async run(argv: readonly string[], io: CommandIO) {
    const { values, positionals } = parseFlags(
      this,
      argv,
      { spec: { type: "string" }, env: { type: "string" }, format: { type: "string" } },
      true,
    );
    const format = oneOf("--format", values.format, FORMATS, "human");
    const specGiven = values.spec !== undefined || positionals.length === 0;
    if (specGiven && !values.env)
      throw new InputError(
        positionals.length === 0 ? "with no PATH, validate renders the spec and needs --env" : "--spec needs --env",
        `usage: ${this.usage}`,
      );
    const spec = values.spec ?? "platform.yaml";
    // Loaded only for a spec: reading rendered files needs neither the spec's schema nor render.
    const fromSpec =
      specGiven && values.env
        ? (await import("../../validate/from-spec.ts")).environmentFromSpec(resolve(io.cwd, spec), values.env, io.cwd, spec)
        : undefined;
    const read = positionals.length > 0 ? readObjects(positionals, io.cwd) : undefined;
    if (read !== undefined) refuseSpecs(read);
    for (const note of read?.notes ?? []) io.stderr.write(`note: ${note}\n`);
    if (read && read.objects.length === 0)
      throw new InputError(
        `no Kubernetes objects found in ${positionals.map((p) => (p === STDIN ? "standard input" : p)).join(", ")}`,
        "pass YAML files or directories holding manifests",
      );
    const result = validateObjects(read?.objects ?? fromSpec?.objects ?? [], fromSpec?.env ?? {}, read?.files ?? new Map());
    const color = format === "human" && (io.stdout as { isTTY?: boolean }).isTTY === true && !io.env["NO_COLOR"];
    io.stdout.write(formatResult(result, format, color));
    return result.errors > 0 ? ExitCode.failure : ExitCode.ok;
  },
};
