// The adapter set one engine serves: what `render` writes into the engine's adapters ConfigMap and
// what the adapter agent beside the engine reads (and follows as kubelet updates the mount).
import { createHash } from "node:crypto";
import { z } from "zod";
import { InputError } from "../errors.ts";
import { API_VERSION, LoraSource, type LoraSourceSpec } from "../spec/schema.ts";
import { yamlPackage } from "../yaml-package.ts";
import { shownUrl } from "../model/shown-url.ts";

export const ADAPTER_SET_KIND = "AdapterSet";

export const AdapterSetEntry = z.strictObject({
  name: z.string().min(1),
  source: LoraSource,
  rank: z.number().int().min(1).max(512),
});

export const AdapterSet = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(ADAPTER_SET_KIND),
  /** The engine Deployment these adapters run on. */
  engine: z.string().min(1),
  /** The base model's served name: never an adapter's. */
  baseModel: z.string().min(1),
  /** The engine's --max-lora-rank. */
  maxLoraRank: z.number().int().min(1),
  adapters: z.array(AdapterSetEntry),
});

export type AdapterSet = z.infer<typeof AdapterSet>;
export type AdapterSetEntry = z.infer<typeof AdapterSetEntry>;

/**
 * What identifies an adapter's files: a new revision, URL or checksum gives a new digest, which the
 * agent fetches into a folder of its own and loads in place of the old one.
 */
export function sourceDigest(source: LoraSourceSpec): string {
  return createHash("sha256").update(JSON.stringify(source)).digest("hex").slice(0, 12);
}

/** How a source reads in messages and /status. */
export function describeSource(source: LoraSourceSpec): string {
  if ("huggingFace" in source) {
    const hf = source.huggingFace;
    return `${hf.repo}@${hf.revision}${hf.file ? `#${hf.file}` : ""}`;
  }
  if ("url" in source) return shownUrl(source.url.url);
  return source.path;
}

/** Parses and checks an adapter set file's text; `file` names it in errors. */
export function parseAdapterSet(text: string, file: string): AdapterSet {
  let document: unknown;
  try {
    document = yamlPackage().parse(text);
  } catch (error) {
    throw new InputError(`${file}: not valid YAML: ${(error as Error).message}`);
  }
  const parsed = AdapterSet.safeParse(document);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.map(String).join(".") || "(document)"}: ${issue.message}`);
    throw new InputError(
      `${file}: not a valid AdapterSet:\n${lines.join("\n")}`,
      "pass --config FILE: the adapters.yaml of the engine's adapters ConfigMap that `diatonic render` writes",
    );
  }
  const seen = new Set<string>([parsed.data.baseModel]);
  for (const [index, adapter] of parsed.data.adapters.entries()) {
    if (seen.has(adapter.name))
      throw new InputError(`${file}: adapters[${index}].name ${JSON.stringify(adapter.name)} is used twice (or is the base model's name)`);
    seen.add(adapter.name);
  }
  return parsed.data;
}
