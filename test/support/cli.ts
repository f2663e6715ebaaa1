import { PassThrough } from "node:stream";
import { main } from "../../src/cli/main.ts";

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  return { stream, text: () => Buffer.concat(chunks).toString("utf8") };
}

/** Runs `diatonic ARGS` in-process, as the bin would, capturing its output and exit code. */
export async function runCli(args: readonly string[], cwd = process.cwd()): Promise<CliRun> {
  const out = sink();
  const err = sink();
  const code = await main(args, { stdout: out.stream, stderr: err.stream, cwd, env: process.env });
  return { code, stdout: out.text(), stderr: err.text() };
}
