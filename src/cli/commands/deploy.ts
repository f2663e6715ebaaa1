import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { createInterface } from "node:readline/promises";
import { applyPlatform } from "../../deploy/apply.ts";
import { destroyPlatform } from "../../deploy/destroy.ts";
import { diffExitCode, diffObjects, formatDiffs } from "../../deploy/diff.ts";
import { applySetId, asMember, groupKind } from "../../deploy/applyset.ts";
import { liveMembers } from "../../deploy/inventory.ts";
import { humanReporter, jsonReporter, type Reporter } from "../../deploy/progress.ts";
import { listRevisions, readRevision } from "../../deploy/revisions.ts";
import { platformStatus } from "../../deploy/status.ts";
import { formatStatus } from "../../deploy/status-format.ts";
import { watchStatus } from "../../deploy/status-watch.ts";
import { ExitCode, InputError } from "../../errors.ts";
import { KubeClient } from "../../kube/client.ts";
import { buildEnvironment, type EnvironmentBuild } from "../../render/build.ts";
import { validationInput } from "../../validate/from-spec.ts";
import { validateObjects, type ValidationResult } from "../../validate/index.ts";
import { readSpec } from "../../spec/load.ts";
import { DIFF_FAILED, oneOf, parseFlags, type Command, type CommandIO } from "../command.ts";

const COMMON = {
  spec: { type: "string", default: "platform.yaml" },
  env: { type: "string" },
  kubeconfig: { type: "string" },
  context: { type: "string" },
  "dry-run": { type: "boolean", default: false },
  output: { type: "string" },
  timeout: { type: "string" },
} as const;

const USAGE_TAIL = "[--spec FILE] --env ENV [--kubeconfig FILE] [--context NAME] [--dry-run] [--output human|json] [--timeout DURATION]";

/** `90s`, `15m`, `1h30m`, `500ms` → milliseconds. */
export function parseDuration(text: string): number {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text)
    throw new InputError(`--timeout ${JSON.stringify(text)} is not a duration`, "use a duration such as 90s, 15m or 1h30m");
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  const total = parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2] as keyof typeof unit], 0);
  // Phases wait on Node timers, which run a wait of more than 2^31 − 1 ms (24.8 days) after 1 ms.
  if (total <= 0 || total > MAX_TIMEOUT_MS)
    throw new InputError(`--timeout ${JSON.stringify(text)} is out of range`, "use a duration above 0 and at most 24h, such as 15m");
  return total;
}

const MAX_TIMEOUT_MS = 24 * 3_600_000;

interface Context {
  readonly client: KubeClient;
  readonly build: EnvironmentBuild;
  readonly specHash: string;
  readonly namespace: string;
  readonly reporter: Reporter;
  readonly timeoutMs: number;
  readonly dryRun: boolean;
  readonly json: boolean;
}

function setup(
  command: Pick<Command, "name" | "usage">,
  values: { spec?: string; env?: string; kubeconfig?: string; context?: string; output?: string; timeout?: string; "dry-run"?: boolean },
  io: CommandIO,
): Context {
  if (!values.env) throw new InputError("missing required flag --env", `usage: ${command.usage}`);
  const output = oneOf("--output", values.output, ["human", "json"] as const, "human");
  const timeoutMs = parseDuration(values.timeout ?? "30m");
  const spec = values.spec ?? "platform.yaml";
  const file = resolve(io.cwd, spec);
  const text = readSpec(file);
  const build = buildEnvironment({ file, shown: spec, environment: values.env, cwd: io.cwd }, text);
  const client = new KubeClient({
    ...(values.kubeconfig ? { kubeconfig: resolve(io.cwd, values.kubeconfig) } : {}),
    ...(values.context ? { context: values.context } : {}),
  });
  return {
    client,
    build,
    specHash: createHash("sha256").update(text).digest("hex"),
    namespace: build.platform.spec.namespace,
    reporter: output === "json" ? jsonReporter(io.stdout) : humanReporter(io.stdout),
    timeoutMs,
    dryRun: values["dry-run"] ?? false,
    json: output === "json",
  };
}

function optionalSecrets(build: EnvironmentBuild): string[] {
  return build.platform.spec.gateway.auth === "optional" ? [build.platform.spec.gateway.apiKeysSecret.name] : [];
}

/** Applies `placed` through the phases with this command's flags (apply and rollback share it). */
async function applyWith(
  ctx: Context,
  placed: EnvironmentBuild["result"]["placed"],
  extra: {
    environment: string;
    specHash: string;
    forceConflicts: boolean;
    deleteData?: boolean;
    note?: string;
    validation?: ValidationResult;
  },
): Promise<void> {
  try {
    await applyPlatform({
      client: ctx.client,
      placed,
      namespace: ctx.namespace,
      environment: extra.environment,
      specHash: extra.specHash,
      reporter: ctx.reporter,
      timeoutMs: ctx.timeoutMs,
      dryRun: ctx.dryRun,
      forceConflicts: extra.forceConflicts,
      deleteData: extra.deleteData ?? false,
      preflight: {
        secrets: ctx.build.result.secrets,
        optionalSecrets: optionalSecrets(ctx.build),
        ...(extra.validation ? { validation: extra.validation } : {}),
      },
      ...(extra.note ? { note: extra.note } : {}),
    });
  } finally {
    ctx.reporter.close();
  }
}

export const applyCommand: Command = {
  name: "apply",
  usage: `diatonic apply ${USAGE_TAIL} [--force-conflicts] [--delete-data]`,
  async run(argv, io) {
    const { values } = parseFlags(this, argv, {
      ...COMMON,
      "force-conflicts": { type: "boolean", default: false },
      "delete-data": { type: "boolean", default: false },
    });
    const ctx = setup(this, values, io);
    // validate's rules run first, as part of preflight: what they call an error would fail on the cluster.
    const input = validationInput(ctx.build);
    const validation = validateObjects(input.objects, input.env);
    await applyWith(ctx, ctx.build.result.placed, {
      environment: ctx.build.platform.environment,
      specHash: ctx.specHash,
      forceConflicts: values["force-conflicts"],
      deleteData: values["delete-data"],
      validation,
    });
    return ExitCode.ok;
  },
};

export const rollbackCommand: Command = {
  name: "rollback",
  usage: `diatonic rollback ${USAGE_TAIL} [--to N] [--force-conflicts]`,
  async run(argv, io) {
    const { values } = parseFlags(this, argv, {
      ...COMMON,
      to: { type: "string" },
      "force-conflicts": { type: "boolean", default: false },
    });
    // A --to that is no number is refused before the cluster is asked anything (it may be unreachable).
    if (values.to !== undefined && !/^[1-9]\d*$/.test(values.to))
      throw new InputError(
        `--to ${JSON.stringify(values.to)} is not a revision number`,
        "pass the number of a recorded revision (diatonic status shows the current one), or leave --to out for the previous one",
      );
    const ctx = setup(this, values, io);
    const revisions = await listRevisions(ctx.client, ctx.namespace);
    const target = values.to !== undefined ? Number(values.to) : revisions.at(-2)?.number;
    if (target === undefined) {
      throw new InputError(
        "there is no earlier revision to roll back to",
        revisions.length > 0 ? `recorded revisions: ${revisions.map((r) => r.number).join(", ")}` : "apply the platform first",
      );
    }
    const revision = await readRevision(ctx.client, ctx.namespace, target);
    await applyWith(ctx, revision.placed, {
      environment: revision.environment,
      specHash: revision.specHash,
      forceConflicts: values["force-conflicts"],
      note: `rollback to ${target}`,
    });
    return ExitCode.ok;
  },
};

export const diffCommand: Command = {
  name: "diff",
  usage: `diatonic diff ${USAGE_TAIL}`,
  failureCode: DIFF_FAILED,
  async run(argv, io) {
    const { values } = parseFlags(this, argv, COMMON);
    const ctx = setup(this, values, io);
    const id = applySetId(ctx.namespace);
    const objects = ctx.build.result.placed.map((p) => asMember(p.object, id));
    const keep = new Set(objects.map((o) => `${groupKind(o)}|${o.metadata.namespace ?? ""}|${o.metadata.name}`));
    const gone = (await liveMembers(ctx.client, ctx.namespace)).filter(
      (o) => !keep.has(`${groupKind(o)}|${o.metadata.namespace ?? ""}|${o.metadata.name}`),
    );
    const diffs = await diffObjects(ctx.client, objects, gone);
    io.stdout.write(
      ctx.json
        ? `${JSON.stringify({ changes: diffs, conflicts: diffs.filter((d) => d.conflicts !== undefined).map((d) => ({ resource: d.resource, fields: d.conflicts })) }, null, 2)}\n`
        : formatDiffs(diffs),
    );
    return diffExitCode(diffs);
  },
};

export const statusCommand: Command = {
  name: "status",
  usage: `diatonic status ${USAGE_TAIL} [--watch]`,
  async run(argv, io) {
    const { values } = parseFlags(this, argv, { ...COMMON, watch: { type: "boolean", default: false } });
    const ctx = setup(this, values, io);
    // In a terminal each refresh redraws the screen: the latest watch notices stay at its foot.
    const redraw = values.watch && !ctx.json && (io.stdout as { isTTY?: boolean }).isTTY === true;
    const recent: string[] = [];
    const show = async () => {
      const report = await platformStatus(ctx.client, ctx.namespace, {
        rendered: ctx.build.result.placed.map((p) => p.object),
        environment: ctx.build.platform.environment,
        instance: ctx.build.platform.name,
      });
      io.stdout.write(
        ctx.json
          ? `${JSON.stringify(report)}\n`
          : `${redraw ? "\u001b[2J\u001b[H" : ""}${formatStatus(report)}${redraw && recent.length > 0 ? `\n${recent.join("\n")}\n` : ""}`,
      );
      return report;
    };
    if (!values.watch) return (await show()).healthy ? ExitCode.ok : ExitCode.failure;
    // Notices go beside the reports: on stderr when stdout is a stream of JSON reports.
    const notices = ctx.json ? io.stderr : io.stdout;
    await show().catch((error: unknown) =>
      notices.write(
        `status --watch: cannot read the status yet (${error instanceof Error ? error.message : String(error)}); watching for the cluster\n`,
      ),
    );
    const stop = new AbortController();
    const end = () => stop.abort();
    process.once("SIGINT", end);
    process.once("SIGTERM", end);
    try {
      await watchStatus({
        client: ctx.client,
        namespace: ctx.namespace,
        refresh: async () => void (await show()),
        notice: (line) => {
          const text = `status --watch ${new Date().toISOString().slice(11, 19)}: ${line}`;
          recent.push(text);
          recent.splice(0, recent.length - 3);
          notices.write(`${text}\n`);
        },
        signal: stop.signal,
      });
    } finally {
      process.off("SIGINT", end);
      process.off("SIGTERM", end);
    }
    return ExitCode.ok;
  },
};

export const destroyCommand: Command = {
  name: "destroy",
  usage: `diatonic destroy ${USAGE_TAIL} [--delete-data] [--yes]`,
  async run(argv, io) {
    const { values } = parseFlags(this, argv, {
      ...COMMON,
      "delete-data": { type: "boolean", default: false },
      yes: { type: "boolean", default: false },
    });
    const ctx = setup(this, values, io);
    if (values["delete-data"] && !values.yes && !ctx.dryRun) {
      const stdin = process.stdin as { isTTY?: boolean };
      if (!stdin.isTTY)
        throw new InputError(
          "--delete-data deletes the model, adapter and vector volumes and the namespace, and needs confirmation",
          "pass --yes to confirm without a terminal",
        );
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      const answer = await rl.question(
        `delete all data of ${ctx.namespace} (model, adapters, Qdrant volumes, namespace)? type the namespace to confirm: `,
      );
      rl.close();
      if (answer.trim() !== ctx.namespace)
        throw new InputError("not confirmed; nothing was deleted", `type ${ctx.namespace} exactly, or pass --yes`);
    }
    try {
      const result = await destroyPlatform({
        client: ctx.client,
        namespace: ctx.namespace,
        instance: ctx.build.platform.name,
        deleteData: values["delete-data"],
        dryRun: ctx.dryRun,
        reporter: ctx.reporter,
      });
      if (!ctx.json)
        io.stdout.write(
          `${ctx.dryRun ? "would delete" : "deleted"} ${result.deleted.length} object(s); kept ${result.kept.length} (data: ${result.kept.join(", ") || "none"})\n`,
        );
    } finally {
      ctx.reporter.close();
    }
    return ExitCode.ok;
  },
};
