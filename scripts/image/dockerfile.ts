// Reads a Dockerfile into instructions: the subset our images use, each instruction with the
// Dockerfile line it starts on. Anything outside the subset is an error naming the line, so the dry
// build (dry-build.ts) never silently skips a step a real build would take.

export type Instruction =
  | { readonly line: number; readonly kind: "FROM"; readonly image: string; readonly stage: string | undefined }
  | { readonly line: number; readonly kind: "WORKDIR"; readonly path: string }
  | {
      readonly line: number;
      readonly kind: "COPY";
      readonly from: string | undefined;
      readonly sources: readonly string[];
      readonly dest: string;
    }
  | { readonly line: number; readonly kind: "RUN"; readonly command: readonly string[] }
  | { readonly line: number; readonly kind: "ENV"; readonly values: Readonly<Record<string, string>> }
  | { readonly line: number; readonly kind: "USER"; readonly user: string }
  | { readonly line: number; readonly kind: "EXPOSE"; readonly ports: readonly string[] }
  | { readonly line: number; readonly kind: "HEALTHCHECK"; readonly options: readonly string[]; readonly command: readonly string[] }
  | { readonly line: number; readonly kind: "ENTRYPOINT" | "CMD"; readonly command: readonly string[] };

export class DockerfileError extends Error {
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.name = "DockerfileError";
  }
}

/** Logical lines: continuations (`\` at the end) joined, comment and blank lines dropped. */
function logicalLines(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let current: { line: number; text: string } | undefined;
  text.split("\n").forEach((raw, index) => {
    const trimmed = raw.trim();
    // A comment line inside a continuation is dropped too, as Docker does.
    if (trimmed.startsWith("#") || (trimmed === "" && current === undefined)) return;
    const continues = trimmed.endsWith("\\");
    const part = continues ? trimmed.slice(0, -1).trim() : trimmed;
    if (current === undefined) current = { line: index + 1, text: part };
    else if (part !== "") current.text += ` ${part}`;
    if (!continues) {
      out.push(current);
      current = undefined;
    }
  });
  if (current !== undefined) out.push(current);
  return out;
}

/** `["a", "b"]` (exec form) or a shell command (shell form, run by /bin/sh -c). */
function commandOf(args: string, where: () => string): string[] {
  if (!args.startsWith("[")) return ["/bin/sh", "-c", args];
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    throw new Error(`${where()}: the exec form must be a JSON array of strings`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((part) => typeof part === "string"))
    throw new Error(`${where()}: the exec form must be a JSON array of strings`);
  return parsed as string[];
}

/** Splits on spaces outside double quotes (ENV, COPY, EXPOSE arguments). */
function words(args: string): string[] {
  return [...args.matchAll(/(?:[^\s"]+|"(?:[^"\\]|\\.)*")+/g)].map((match) => match[0]);
}

const unquote = (value: string): string => (value.startsWith('"') && value.endsWith('"') ? (JSON.parse(value) as string) : value);

export function parseDockerfile(text: string, file = "Dockerfile"): Instruction[] {
  return logicalLines(text).map(({ line, text: body }) => {
    const space = body.search(/\s/);
    const keyword = (space < 0 ? body : body.slice(0, space)).toUpperCase();
    const args = space < 0 ? "" : body.slice(space + 1).trim();
    const fail = (message: string): never => {
      throw new DockerfileError(file, line, message);
    };
    const command = (text = args): string[] => {
      try {
        return commandOf(text, () => keyword);
      } catch (error) {
        return fail((error as Error).message);
      }
    };
    switch (keyword) {
      case "FROM": {
        const parts = words(args);
        if (parts.length === 1) return { line, kind: "FROM", image: parts[0] as string, stage: undefined };
        if (parts.length === 3 && parts[1]?.toUpperCase() === "AS")
          return { line, kind: "FROM", image: parts[0] as string, stage: parts[2] };
        return fail("FROM takes IMAGE [AS NAME]");
      }
      case "WORKDIR":
        if (!args.startsWith("/")) fail("WORKDIR must be an absolute path");
        return { line, kind: "WORKDIR", path: args };
      case "COPY": {
        const parts = words(args);
        let from: string | undefined;
        while (parts[0]?.startsWith("--")) {
          const flag = parts.shift() as string;
          if (flag.startsWith("--from=")) from = flag.slice("--from=".length);
          else fail(`COPY ${flag} is not supported by the dry build`);
        }
        if (parts.length < 2) fail("COPY takes SOURCE... DEST");
        const sources = parts.slice(0, -1).map(unquote);
        for (const source of sources)
          if (/[*?[]/.test(source)) fail(`COPY ${source}: wildcards are not supported by the dry build; name the files`);
        return { line, kind: "COPY", from, sources, dest: unquote(parts.at(-1) as string) };
      }
      case "RUN":
        if (args.startsWith("--")) fail("RUN flags are not supported by the dry build");
        return { line, kind: "RUN", command: command() };
      case "ENV": {
        const parts = words(args);
        const values: Record<string, string> = {};
        if (parts.length === 2 && !(parts[0] as string).includes("=")) values[parts[0] as string] = unquote(parts[1] as string);
        else
          for (const part of parts) {
            const at = part.indexOf("=");
            if (at <= 0) fail(`ENV ${part} is not KEY=VALUE`);
            values[part.slice(0, at)] = unquote(part.slice(at + 1));
          }
        return { line, kind: "ENV", values };
      }
      case "USER":
        if (args === "") fail("USER needs a user");
        return { line, kind: "USER", user: args };
      case "EXPOSE":
        return { line, kind: "EXPOSE", ports: words(args) };
      case "HEALTHCHECK": {
        const at = args.search(/(^|\s)CMD\s/);
        if (at < 0) fail("HEALTHCHECK needs CMD (or is NONE, which the dry build does not support)");
        const rest = args.slice(at).trim().slice(3).trim();
        return { line, kind: "HEALTHCHECK", options: words(args.slice(0, at)), command: command(rest) };
      }
      case "ENTRYPOINT":
      case "CMD":
        return { line, kind: keyword, command: command() };
      default:
        return fail(`${keyword} is not supported by the dry build`);
    }
  });
}
