import { resolve } from "node:path";
import { ExitCode, InputError } from "../../errors.ts";
import { formatPlan, planPlatform } from "../../plan/index.ts";
import { oneOf, parseFlags, type Command, type CommandIO } from "../command.ts";

export const planCommand: Command = {
  name: "plan",
  usage: "diatonic plan [--spec FILE] --env ENV [--format human|json]",
  async run(argv: readonly string[], io: CommandIO) {
    const { values } = parseFlags(this, argv, {
      spec: { type: "string", default: "platform.yaml" },
      env: { type: "string" },
      format: { type: "string" },
    });
    if (!values.env) throw new InputError("missing required flag --env", `usage: ${this.usage}`);
    const format = oneOf("--format", values.format, ["human", "json"] as const, "human");
    const plan = planPlatform(resolve(io.cwd, values.spec), values.env, io.cwd, values.spec);
    io.stdout.write(format === "json" ? `${JSON.stringify(plan, null, 2)}\n` : formatPlan(plan));
    return plan.findings.some((f) => f.severity === "error") ? ExitCode.failure : ExitCode.ok;
  },
};
