import { exitCodeOf, ExitCode, InputError, WorldError } from "../errors.ts";
import { VERSION } from "../render/context.ts";
import { closest } from "../spec/issues.ts";
import type { Command, CommandIO } from "./command.ts";
import { commands } from "./commands/index.ts";

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `diatonic: Llama 3 with many LoRA adapters on Kubernetes\n\nusage: diatonic <command> [flags]\n\n${lines.join("\n")}\n\nRun 'diatonic <command> --help' for a command's flags, 'diatonic --version' for the version.\n`;
}

export async function main(argv: readonly string[], io: CommandIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    io.stdout.write(help());
    return name === undefined ? ExitCode.badInput : ExitCode.ok;
  }
  if (name === "--version" || name === "-V" || name === "version") {
    io.stdout.write(`diatonic ${VERSION}\n`);
    return ExitCode.ok;
  }
  const entry = commands.find((c) => c.name === name);
  if (entry === undefined) {
    const guess = closest(
      name.replace(/^-+/, ""),
      commands.map((c) => c.name),
    );
    io.stderr.write(
      `diatonic: unknown command ${JSON.stringify(name)}${guess !== undefined ? `: did you mean ${guess}?` : ""}\n\n${help()}`,
    );
    return ExitCode.badInput;
  }
  let command: Command | undefined;
  try {
    command = await entry.load();
    if (rest.includes("--help") || rest.includes("-h")) {
      io.stdout.write(`usage: ${command.usage}\n\n${entry.summary}\n`);
      return ExitCode.ok;
    }
    return await command.run(rest, io);
  } catch (error) {
    return reportError(error, io, command?.failureCode);
  }
}

/**
 * Prints an error without a stack when the user or the world caused it, and says which exit code it
 * gets: 2 for bad input, else `failureCode` (1, or a command's own, as diff's).
 */
export function reportError(error: unknown, io: Pick<CommandIO, "stderr">, failureCode: number = ExitCode.failure): number {
  if (error instanceof InputError || error instanceof WorldError) {
    io.stderr.write(`error: ${error.message}\n`);
    if (error.fix) io.stderr.write(`  fix: ${error.fix}\n`);
    return exitCodeOf(error, failureCode);
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  io.stderr.write(`internal error: ${message}\n`);
  return failureCode;
}

const isEntry = process.argv[1] !== undefined && /(?:diatonic(?:\.js)?|main\.[tj]s)$/.test(process.argv[1]);
if (isEntry) {
  // A reader that stops early (`| head`) closes the pipe: stop quietly, as Unix tools do, not with a stack trace.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    process.exit(process.exitCode ?? 0);
  });
  // No top-level await: the CLI is also bundled as one CommonJS script (bin/cli-build.mjs).
  void main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    cwd: process.cwd(),
    env: process.env,
  }).then((code) => {
    process.exitCode = code;
  });
}
