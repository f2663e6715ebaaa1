import { parseArgs, type ParseArgsConfig } from "node:util";
import { closest } from "../spec/issues.ts";
import { exitCodeOf, InputError, WorldError, type ExitCode } from "../errors.ts";
import { SpecError } from "../spec/issues.ts";

/** One `diatonic <name>` subcommand. Commands parse flags and call library functions; no logic here. */
export interface Command {
  readonly name: string;
  readonly usage: string;
  /**
   * The exit code of a failure that is not the input's (a cluster it cannot reach, a crash), for a
   * command whose 1 means something else. @default ExitCode.failure (1)
   */
  readonly failureCode?: number;
  run(argv: readonly string[], io: CommandIO): Promise<ExitCode>;
}

/**
 * `diff` could not compare (the cluster unreachable, any failure but bad input): its 1 means "changes
 * exist", and a CI gate must tell an outage from drift.
 */
export const DIFF_FAILED = 4;

export interface CommandIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** parseArgs with errors turned into InputErrors that name the flag and show the usage. */
export function parseFlags<const O extends Options>(
  command: Pick<Command, "name" | "usage">,
  argv: readonly string[],
  options: O,
  allowPositionals = false,
): ReturnType<typeof parseArgs<{ options: O; allowPositionals: boolean; strict: true; args: string[] }>> {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals, strict: true });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // An unknown flag: name the nearest known one (--envv → --env).
    const unknown =
      (error as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ? /'(-{1,2}[^'=]+)/.exec(message)?.[1] : undefined;
    const guess = unknown?.startsWith("--") ? closest(unknown.slice(2), Object.keys(options)) : undefined;
    throw new InputError(
      `diatonic ${command.name}: ${message}`,
      `${guess !== undefined ? `did you mean --${guess}? ` : ""}usage: ${command.usage}`,
    );
  }
}

/** Reads a flag that must be one of a fixed set of values. */
export function oneOf<const T extends string>(flag: string, value: string | undefined, allowed: readonly T[], fallback?: T): T {
  if (value === undefined) {
    if (fallback !== undefined) return fallback;
    throw new InputError(`missing required flag ${flag}`, `pass ${flag} ${allowed.join("|")}`);
  }
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new InputError(`${flag} ${JSON.stringify(value)} is not one of ${allowed.join(", ")}`, `pass ${flag} ${allowed.join("|")}`);
}

/** Reads a `--flag` / `--no-flag` pair: true, false, or undefined when neither is given. */
export function onOff(flag: string, on: boolean | undefined, off: boolean | undefined): boolean | undefined {
  const negated = `--no-${flag.replace(/^--/, "")}`;
  if (on === true && off === true) throw new InputError(`${flag} and ${negated} are both given`, `pass one of ${flag} and ${negated}`);
  return on === true ? true : off === true ? false : undefined;
}

/** Reads `--port`: 0 (a free port) to 65535. */
export function portFlag(value: string | undefined): number | undefined;
export function portFlag(value: string | undefined, fallback: number): number;
export function portFlag(value: string | undefined, fallback?: number): number | undefined {
  if (value === undefined) return fallback;
  // Digits only: Number("") and Number(" ") are 0, a random port nobody asked for.
  const port = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InputError(`--port ${JSON.stringify(value)} is not a port number`, "pass --port 0..65535");
  return port;
}

/** The last `--output` is `json` (as parseArgs takes the last of a repeated flag), read before the flags are parsed. */
function asksForJson(argv: readonly string[]): boolean {
  let output: string | undefined;
  argv.forEach((arg, i) => {
    if (arg === "--output") output = argv[i + 1];
    else if (arg.startsWith("--output=")) output = arg.slice("--output=".length);
  });
  return output === "json";
}

/**
 * The command, writing on stdout a last JSON line for any error that ends it when `--output json`
 * is asked for, as well as the words on stderr: a machine reading the events (or the document) sees
 * why it ended, with the exit code, however early it failed (a bad flag, a spec error, no cluster).
 * `{"type":"error","message","fix"?,"issues"?,"exitCode"}`; a spec error's issues are listed with
 * their file, line and path.
 */
export function withJsonErrors(command: Command): Command {
  return {
    ...command,
    async run(argv, io) {
      try {
        return await command.run.call(command, argv, io);
      } catch (error) {
        if (asksForJson(argv)) {
          const known = error instanceof InputError || error instanceof WorldError;
          const event = {
            time: new Date().toISOString(),
            type: "error",
            message: error instanceof Error ? error.message : String(error),
            ...(known && error.fix !== undefined ? { fix: error.fix } : {}),
            ...(error instanceof SpecError ? { issues: error.issues } : {}),
            exitCode: exitCodeOf(error, command.failureCode),
          };
          io.stdout.write(`${JSON.stringify(event)}\n`);
        }
        throw error;
      }
    },
  };
}
