// Runs the machine's own tools (ip, iptables, umount, gcc, ctr) for the real node.
import { spawnSync } from "node:child_process";

export interface CommandResult {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion; never throws (a missing binary is a failed result). */
export function attempt(command: string, args: readonly string[], input?: string): CommandResult {
  const result = spawnSync(command, args, { encoding: "utf8", input, maxBuffer: 64 * 1024 * 1024 });
  const stderr = result.error ? result.error.message : result.stderr;
  return { ok: result.status === 0 && !result.error, stdout: result.stdout ?? "", stderr: stderr ?? "" };
}

export class CommandError extends Error {
  override name = "CommandError";
}

/** Runs a command and returns its stdout; throws with its stderr when it fails. */
export function must(command: string, args: readonly string[], input?: string): string {
  const result = attempt(command, args, input);
  if (!result.ok) throw new CommandError(`${command} ${args.join(" ")} failed: ${result.stderr.trim()}`);
  return result.stdout;
}
