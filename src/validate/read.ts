import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { InputError } from "../errors.ts";
import type { KubeObject } from "../render/context.ts";
import { TREE_MARKER } from "../write/atomic.ts";
import { buildRenderedTree } from "../write/kustomize-build.ts";
import { resourceId } from "../render/schema-check.ts";
import { yamlPackage } from "../yaml-package.ts";

export interface ReadObjects {
  readonly objects: KubeObject[];
  /** resource id → file it came from */
  readonly files: Map<string, string>;
  /** What the reader chose for the user (which overlay of a rendered tree it read), to tell them. */
  readonly notes: string[];
}

const KUSTOMIZATIONS = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

function isKubeObject(value: unknown): value is KubeObject {
  const v = value as { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown } } | null;
  return (
    typeof v === "object" &&
    v !== null &&
    typeof v.apiVersion === "string" &&
    typeof v.kind === "string" &&
    typeof v.metadata?.name === "string"
  );
}

function parseObjects(text: string, source: string, out: ReadObjects): void {
  for (const doc of yamlPackage().parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      const first = doc.errors[0];
      const line = first?.linePos?.[0];
      if (/\{\{.*\}\}/.test(text)) {
        throw new InputError(
          `${source} is a template ({{ … }}), not rendered manifests`,
          "render it first and validate the output, e.g. helm template CHART | diatonic validate -",
        );
      }
      throw new InputError(
        `${source}${line ? `:${line.line}:${line.col}` : ""}: YAML syntax: ${first?.message.split("\n")[0] ?? "invalid"}`,
        "fix the YAML, or leave the file out",
      );
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    const items = (value as { kind?: string; items?: unknown[] }).kind?.endsWith("List")
      ? ((value as { items?: unknown[] }).items ?? [])
      : [value];
    for (const item of items) {
      if (!isKubeObject(item) || "$patch" in item) continue;
      out.objects.push(item);
      out.files.set(resourceId(item), source);
    }
  }
}

function kustomizeBuild(dir: string): string {
  try {
    return execFileSync(process.env["KUBECTL"] || "kubectl", ["kustomize", dir], {
      encoding: "utf8",
      maxBuffer: 256 * 1024 * 1024,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? (error as Error).message;
    if ((error as NodeJS.ErrnoException).code === "ENOENT")
      throw new InputError(
        `${dir} is a Kustomize tree that uses more than render writes, and building it needs kubectl`,
        "install kubectl (or point KUBECTL at one), or pass the built YAML: kubectl kustomize DIR | diatonic validate -",
      );
    throw new InputError(`kubectl kustomize ${dir} failed: ${stderr.trim()}`, "fix the kustomization, or pass plain YAML files");
  }
}

/** The environment `render --out` was asked for, from the tree's marker file (older trees do not say). */
function renderedFor(marker: string): string | undefined {
  try {
    const recorded: unknown = JSON.parse(readFileSync(marker, "utf8"));
    const environment = typeof recorded === "object" && recorded !== null && "environment" in recorded ? recorded.environment : undefined;
    return typeof environment === "string" ? environment : undefined;
  } catch {
    return undefined;
  }
}

/** The path that means standard input (`kustomize build | diatonic validate -`). */
export const STDIN = "-";

/**
 * Reads YAML files and directories, and `-` for standard input. A directory with a kustomization is built with `kubectl kustomize`
 * (so overlays are checked as they will be applied); other directories are read recursively. Paths are as the user
 * typed them (relative to `cwd`), and messages name files that way.
 */
export function readObjects(paths: readonly string[], cwd: string): ReadObjects {
  const out: ReadObjects = { objects: [], files: new Map(), notes: [] };
  const visit = (shown: string) => {
    if (shown === STDIN) {
      parseObjects(readFileSync(0, "utf8"), "<stdin>", out);
      return;
    }
    const path = resolve(cwd, shown);
    if (!existsSync(path)) throw new InputError(`${shown} does not exist`, "pass YAML files or directories");
    if (statSync(path).isDirectory()) {
      if (existsSync(join(path, TREE_MARKER)) && existsSync(join(path, "overlays"))) {
        const envs = readdirSync(join(path, "overlays")).sort();
        const requested = renderedFor(join(path, TREE_MARKER));
        if (requested === undefined || !envs.includes(requested)) {
          throw new InputError(
            `${shown} holds every environment's overlay; validating them together would mix environments`,
            `pass one overlay: ${envs.map((e) => join(shown, "overlays", e)).join(" or ")}`,
          );
        }
        const overlay = join(shown, "overlays", requested);
        const others = envs.filter((e) => e !== requested);
        out.notes.push(
          `${shown} holds every environment's overlay: validating ${overlay}, the environment render was asked for${others.length > 0 ? ` (for another, pass ${others.map((e) => join(shown, "overlays", e)).join(" or ")})` : ""}`,
        );
        visit(overlay);
        return;
      }
      if (existsSync(join(path, "Chart.yaml"))) {
        throw new InputError(
          `${shown} is a Helm chart, and validate reads rendered manifests`,
          `helm template ${shown} | diatonic validate -`,
        );
      }
      if (KUSTOMIZATIONS.some((k) => existsSync(join(path, k)))) {
        // A tree as render writes it is built here; any other Kustomize feature goes to kubectl.
        const built = buildRenderedTree(path, shown);
        if (built !== undefined) {
          for (const { object, file } of built) {
            out.objects.push(object);
            out.files.set(resourceId(object), file);
          }
        } else parseObjects(kustomizeBuild(path), shown, out);
        return;
      }
      for (const entry of readdirSync(path).sort()) {
        if (entry.startsWith(".")) continue;
        if (statSync(join(path, entry)).isDirectory() || /\.ya?ml$/.test(entry)) visit(join(shown, entry));
      }
      return;
    }
    parseObjects(readFileSync(path, "utf8"), shown, out);
  };
  for (const path of paths) visit(path);
  return out;
}
