import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { parseAllDocuments } from "yaml";
import { InputError } from "../errors.ts";
import type { KubeClient } from "../kube/client.ts";
import type { KubeObject, Placed } from "../render/context.ts";
import { toYamlStream } from "../write/yaml.ts";

const REVISION_LABEL = "diatonic.ai/revision";
const KEEP = 10;

export interface Revision {
  readonly number: number;
  readonly specHash: string;
  readonly environment: string;
  readonly appliedAt: string;
  readonly note: string;
  readonly placed: Placed[];
}

function revisionName(n: number): string {
  return `diatonic-revision-${n}`;
}

export async function listRevisions(client: KubeClient, namespace: string): Promise<{ number: number; object: KubeObject }[]> {
  const objects = await client.list("v1", "ConfigMap", namespace, REVISION_LABEL);
  return objects
    .map((object) => ({ number: Number(object.metadata.labels?.[REVISION_LABEL]), object }))
    .filter((r) => Number.isInteger(r.number))
    .sort((a, b) => a.number - b.number);
}

/**
 * Records what was applied: the rendered objects (gzip; they hold no secret values), the spec hash,
 * the time. Keeps the last ten.
 */
export async function recordRevision(client: KubeClient, namespace: string, revision: Omit<Revision, "number">): Promise<number> {
  const existing = await listRevisions(client, namespace);
  const number = (existing.at(-1)?.number ?? 0) + 1;
  const components = revision.placed.map((p) => p.component);
  const body = gzipSync(toYamlStream(revision.placed.map((p) => p.object))).toString("base64");
  await client.apply({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: revisionName(number),
      namespace,
      labels: { [REVISION_LABEL]: String(number), "app.kubernetes.io/managed-by": "diatonic" },
      annotations: {
        "diatonic.ai/spec-hash": revision.specHash,
        "diatonic.ai/environment": revision.environment,
        "diatonic.ai/applied-at": revision.appliedAt,
        "diatonic.ai/note": revision.note,
      },
    },
    data: { components: JSON.stringify(components) },
    binaryData: { "objects.yaml.gz": body },
  } as KubeObject);
  for (const old of existing.slice(0, Math.max(0, existing.length + 1 - KEEP))) await client.delete(old.object);
  return number;
}

export async function readRevision(client: KubeClient, namespace: string, number: number): Promise<Revision> {
  const all = await listRevisions(client, namespace);
  const found = all.find((r) => r.number === number);
  if (!found) {
    throw new InputError(
      `revision ${number} is not recorded in ${namespace}`,
      all.length > 0 ? `use one of: ${all.map((r) => r.number).join(", ")}` : "apply the platform first",
    );
  }
  const object = found.object as KubeObject & { data?: Record<string, string>; binaryData?: Record<string, string> };
  const yaml = gunzipSync(Buffer.from(object.binaryData?.["objects.yaml.gz"] ?? "", "base64")).toString("utf8");
  const objects = parseAllDocuments(yaml).map((d) => d.toJS() as KubeObject);
  const components = JSON.parse(object.data?.["components"] ?? "[]") as string[];
  const annotations = object.metadata.annotations ?? {};
  return {
    number,
    specHash: annotations["diatonic.ai/spec-hash"] ?? "",
    environment: annotations["diatonic.ai/environment"] ?? "",
    appliedAt: annotations["diatonic.ai/applied-at"] ?? "",
    note: annotations["diatonic.ai/note"] ?? "",
    placed: objects.map((o, i) => ({ object: o, component: components[i] ?? "" })),
  };
}

export function hashObjects(objects: readonly KubeObject[]): string {
  return createHash("sha256").update(JSON.stringify(objects)).digest("hex").slice(0, 16);
}
