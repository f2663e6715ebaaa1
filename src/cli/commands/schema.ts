import { resolve } from "node:path";
import { ExitCode } from "../../errors.ts";
import { platformJsonSchema } from "../../spec/json-schema.ts";
import { writeFileAtomically } from "../../write/atomic.ts";
import { parseFlags, type Command, type CommandIO } from "../command.ts";

export const schemaCommand: Command = {
  name: "schema",
  usage: "diatonic schema [--out FILE]",
  async run(argv: readonly string[], io: CommandIO) {
    const { values } = parseFlags(this, argv, { out: { type: "string" } });
    const text = `${JSON.stringify(platformJsonSchema(), null, 2)}\n`;
    if (values.out) {
      const file = resolve(io.cwd, values.out);
      writeFileAtomically(file, text);
      io.stdout.write(`wrote the JSON Schema of platform.yaml to ${file} (editors: # yaml-language-server: $schema=${file})\n`);
    } else {
      io.stdout.write(text);
    }
    return ExitCode.ok;
  },
};
