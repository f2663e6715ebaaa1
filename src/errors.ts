/** An error the user caused and can fix: bad spec, flag, file or request. The CLI exits 2. */
export class InputError extends Error {
  override readonly name = "InputError";
  constructor(
    message: string,
    /** How to fix it, printed after the message. */
    readonly fix?: string,
  ) {
    super(message);
  }
}

/** A failure of the world (cluster, network, disk), not of the input. The CLI exits 1. */
export class WorldError extends Error {
  override readonly name = "WorldError";
  constructor(
    message: string,
    readonly fix?: string,
    options?: { readonly cause?: unknown },
  ) {
    super(message, options);
  }
}

export const ExitCode = {
  ok: 0,
  failure: 1,
  badInput: 2,
  /** diff only: fields another manager owns would stop the apply (1 there means "changes exist"). */
  conflict: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The exit code an error ends a command with: 2 for bad input, else `failureCode`. */
export function exitCodeOf(error: unknown, failureCode: number = ExitCode.failure): number {
  return error instanceof InputError ? ExitCode.badInput : failureCode;
}
