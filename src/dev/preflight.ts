// What `diatonic dev` checks before it loads anything (a model and an embedder take seconds to start):
// the API key, the data folder, and the gateway's port, which it holds until the gateway takes it.
import { accessSync, constants, mkdirSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { InputError, WorldError } from "../errors.ts";
import { typablePath } from "../paths.ts";

/** An API key a client can send: not empty, no spaces around it (a shell's quotes keep them; an Authorization header does not). */
export function checkApiKey(apiKey: string | undefined): void {
  if (apiKey === undefined) return;
  // The key is not echoed: it is a secret, and its spaces would not show.
  const problem = apiKey.trim() === "" ? "is empty" : apiKey.trim() !== apiKey ? "has spaces or a line break around it" : undefined;
  if (problem !== undefined)
    throw new InputError(
      `--api-key ${problem}: no client could send it`,
      "pass --api-key KEY with the key alone, or leave --api-key out to run without auth",
    );
}

/** The data folder, made before anything loads: a file in its place (--data package.json) is said at once. */
export function prepareDataDir(dataDir: string, given: boolean, cwd: string): void {
  try {
    mkdirSync(dataDir, { recursive: true });
    accessSync(dataDir, constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const shown = typablePath(cwd, dataDir);
    if (!given)
      throw new WorldError(
        `cannot use the dev stack's data folder ${shown}: ${(error as Error).message}`,
        "pass --data DIR, a folder you can write",
        { cause: error },
      );
    if (code === "EEXIST" || code === "ENOTDIR")
      throw new InputError(
        `--data ${shown} is not a folder: ${code === "EEXIST" ? "a file is there" : "a file is on its path"}`,
        "pass --data DIR, a folder (made if missing) for the stack's vectors and LoRAs",
      );
    throw new InputError(`--data ${shown} cannot be written: ${(error as Error).message}`, "pass --data DIR, a folder you can write");
  }
}

/** What a failed listen on the gateway's address means, naming the port and the flag that changes it. */
export function listenError(error: unknown, host: string, port: number): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE")
    return new WorldError(
      `cannot listen on ${host}:${port}: the port is in use`,
      `pass --port N (0 picks a free port), or stop what listens on ${port}`,
      { cause: error },
    );
  if (code === "EACCES")
    return new WorldError(
      `cannot listen on ${host}:${port}: EACCES (ports below 1024 need privileges)`,
      "pass --port N (0 picks a free port)",
      { cause: error },
    );
  if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND")
    return new InputError(
      `--host ${host} is not an address of this machine (${code})`,
      "pass --host 127.0.0.1, or 0.0.0.0 for every interface",
    );
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * Holds the gateway's port while the model and the embedder load (seconds), so that a port in use is
 * said before any of it; the gateway takes the port over when it starts. Port 0 needs no hold.
 */
export async function holdPort(host: string, port: number): Promise<Server | undefined> {
  if (port === 0) return undefined;
  // A client that comes early finds no half-started gateway: its connection is closed.
  const server = createServer((socket) => socket.destroy());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    throw listenError(error, host, port);
  }
  return server;
}

/** Lets the held port go, for the gateway to listen on. */
export function releasePort(server: Server | undefined): Promise<void> {
  return new Promise((resolve) => (server?.listening === true ? server.close(() => resolve()) : resolve()));
}
