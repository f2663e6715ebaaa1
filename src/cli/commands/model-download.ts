import { ExitCode, InputError } from "../../errors.ts";
import { downloadModels, parseItem } from "../../model/download.ts";
import { parseFlags, type Command, type CommandIO } from "../command.ts";

export const modelDownloadCommand: Command = {
  name: "model-download",
  usage: "diatonic model-download DIR=REPO@REVISION[#FILE] ...",
  async run(argv: readonly string[], io: CommandIO) {
    const { positionals } = parseFlags(this, argv, {}, true);
    if (positionals.length === 0) throw new InputError("nothing to download", `usage: ${this.usage}`);
    const items = positionals.map(parseItem);
    const report = await downloadModels(items, { progress: (line) => io.stdout.write(`${line}\n`) });
    io.stdout.write(`downloaded ${report.downloaded.length}, already present ${report.skipped.length}\n`);
    return ExitCode.ok;
  },
};
