import { ExitCode, InputError } from "../../errors.ts";
import { DEV_GATEWAY_URL, ingestPaths, type IngestProgress } from "../../rag/client.ts";
import { parseFlags, type Command, type CommandIO } from "../command.ts";

/** The progress line; on a terminal it is redrawn in place, and `end` closes it before anything else is printed. */
function progressBar(io: CommandIO): { readonly update: (progress: IngestProgress) => void; readonly end: () => void } {
  const tty = (io.stderr as NodeJS.WriteStream).isTTY === true;
  let open = false;
  return {
    update({ filesDone, filesTotal }) {
      const width = 30;
      const filled = filesTotal === 0 ? width : Math.round((filesDone / filesTotal) * width);
      const line = `ingest [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${filesDone}/${filesTotal} files`;
      open = tty && filesDone !== filesTotal;
      io.stderr.write(tty ? `\r${line}${open ? "" : "\n"}` : `${line}\n`);
    },
    end() {
      if (open) io.stderr.write("\n");
      open = false;
    },
  };
}

export const ingestCommand: Command = {
  name: "ingest",
  usage: "diatonic ingest --adapter NAME [PATH ...] [--as NAME] [--gateway URL] [--api-key KEY] [--prune] [--reindex]",
  async run(argv: readonly string[], io: CommandIO) {
    const { values, positionals } = parseFlags(
      this,
      argv,
      {
        adapter: { type: "string" },
        gateway: { type: "string" },
        "api-key": { type: "string" },
        prune: { type: "boolean", default: false },
        reindex: { type: "boolean", default: false },
        as: { type: "string" },
      },
      true,
    );
    if (values.adapter === undefined) {
      throw new InputError("missing required flag --adapter", `usage: ${this.usage}`);
    }
    const apiKey = values["api-key"] ?? io.env.DIATONIC_API_KEY;
    const progress = progressBar(io);
    let summary;
    try {
      summary = await ingestPaths({
        adapter: values.adapter,
        paths: positionals,
        cwd: io.cwd,
        ...(values.gateway !== undefined ? { gateway: values.gateway } : {}),
        ...(apiKey ? { apiKey } : {}),
        prune: values.prune,
        reindex: values.reindex,
        ...(values.as !== undefined ? { as: values.as } : {}),
        onProgress: progress.update,
      });
    } finally {
      // An error is printed after this: on its own line, not glued to the progress line.
      progress.end();
    }
    for (const skip of summary.skipped) io.stderr.write(`skipped ${skip.path}: ${skip.reason}\n`);
    io.stdout.write(
      `ingested ${summary.files} file${summary.files === 1 ? "" : "s"} into adapter ${summary.adapter} (collection ${summary.collection}) at ${values.gateway ?? DEV_GATEWAY_URL}\n` +
        `  chunks: ${summary.added} added, ${summary.updated} updated, ${summary.unchanged} unchanged, ${summary.removed} removed\n` +
        (summary.pruned.length > 0 ? `  pruned sources: ${summary.pruned.join(", ")}\n` : "") +
        (values.reindex ? `  keyword index: worked out again for all ${summary.reindexed} chunks of the collection\n` : ""),
    );
    return ExitCode.ok;
  },
};
