// One image of the platform: how its inputs are hashed and how its own layers are made on the base.
// Dockerfiles (app-image.ts) and a prebuilt binary (qdrant-image.ts) are the two kinds.
import type { BaseImage } from "./base.ts";
import type { LayerBlob } from "./layer.ts";
import type { RunConfig } from "./oci.ts";

export interface ImageLayers {
  readonly config: RunConfig;
  /** Above the base, bottom first, each with what made it (the config's history). */
  readonly layers: readonly { readonly blob: LayerBlob; readonly createdBy: string }[];
}

export interface ImageRecipe {
  /** Short name: the archive's file name and the CLI's `--image`. */
  readonly key: string;
  /** The full reference containerd and the kubelet know the image by. */
  readonly name: string;
  /** Hash of everything the image is made of, the base's hash included. */
  inputHash(base: BaseImage): Promise<string>;
  /** Makes the image's own layers in `work`, an empty folder it may fill. */
  build(base: BaseImage, work: string, progress: (line: string) => void): Promise<ImageLayers>;
}

/** `KEY=value` lines: the base's, with the image's replacing those of the same key, as a build merges ENV. */
export function mergeEnv(base: readonly string[], added: Readonly<Record<string, string>>): string[] {
  const keys = new Set(Object.keys(added));
  return [
    ...base.filter((line) => !keys.has(line.slice(0, line.indexOf("=")))),
    ...Object.entries(added).map(([key, value]) => `${key}=${value}`),
  ];
}
