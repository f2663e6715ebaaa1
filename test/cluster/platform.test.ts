// The rendered `local` platform, applied as a user would (kubectl apply --server-side -k), is
// accepted whole (Pod Security admission and CRD schemas included) and its workloads reach Ready.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import { kwokPlacementLabel } from "../../scripts/cluster/admission.ts";
import { repoRoot } from "../../scripts/cluster/config.ts";
import { clusterSkipReason, testCluster, type TestCluster } from "../support/cluster.ts";

const run = promisify(execFile);
const labSpec = join(repoRoot, "examples", "lab", "platform.yaml");

function skipReason(): string | false {
  const tier = clusterSkipReason();
  if (tier) return tier;
  if (!existsSync(join(repoRoot, "src", "render")) || !existsSync(labSpec)) {
    return "the renderer (src/render) or examples/lab/platform.yaml is not in this checkout yet";
  }
  return false;
}

interface Workload {
  readonly kind: "Deployment" | "StatefulSet" | "DaemonSet";
  readonly namespace: string;
  readonly name: string;
}

describe("cluster tier: the rendered local platform", { skip: skipReason() }, () => {
  let cluster: TestCluster;
  const out = mkdtempSync(join(tmpdir(), "diatonic-platform-"));
  const overlay = join(out, "overlays", "local");
  before(async () => {
    cluster = await testCluster();
  });
  after(async () => {
    if (existsSync(overlay) && cluster !== undefined) {
      await cluster.kubectl(["delete", "-k", overlay, "--ignore-not-found", "--wait=true", "--timeout=90s"]);
    }
    rmSync(out, { recursive: true, force: true });
  });

  it("is accepted by kubectl apply --server-side -k and its workloads become Ready", { timeout: 300_000 }, async () => {
    await run(process.execPath, [join(repoRoot, "bin", "diatonic.js"), "render", "--spec", labSpec, "--env", "local", "--out", out], {
      cwd: repoRoot,
    });
    assert.ok(existsSync(join(overlay, "kustomization.yaml")), "render wrote overlays/local/kustomization.yaml");

    const built = await cluster.kubectl(["kustomize", overlay]);
    const objects = parseAllDocuments(built).map((d) => d.toJS() as Record<string, unknown> | null);
    const workloads: Workload[] = [];
    for (const object of objects) {
      const kind = object?.kind;
      const metadata = object?.metadata as { name?: string; namespace?: string } | undefined;
      if ((kind === "Deployment" || kind === "StatefulSet" || kind === "DaemonSet") && metadata?.name) {
        workloads.push({ kind, name: metadata.name, namespace: metadata.namespace ?? "default" });
      }
    }
    assert.ok(
      workloads.some((w) => w.kind === "Deployment"),
      "the platform has Deployments",
    );
    assert.ok(
      workloads.some((w) => w.kind === "StatefulSet"),
      "the platform has a StatefulSet (Qdrant)",
    );

    // kwok's simulated kubelets run it (the namespace's label keeps the local environment off the
    // real node): this test checks that the plain output applies and rolls out, not the containers.
    const namespaces = objects.filter((o) => o?.kind === "Namespace").map((o) => (o?.metadata as { name: string }).name);
    for (const namespace of namespaces) {
      await cluster.kubectl(["create", "namespace", namespace]);
      await cluster.kubectl(["label", "namespace", namespace, `${kwokPlacementLabel.key}=${kwokPlacementLabel.value}`]);
    }
    const applied = await cluster.kubectl(["apply", "--server-side", "-k", overlay]);
    const lines = applied.trim().split("\n");
    assert.equal(lines.length, objects.filter((o) => o !== null).length, `every object applied:\n${applied}`);

    for (const workload of workloads) {
      await cluster.kubectl([
        "-n",
        workload.namespace,
        "rollout",
        "status",
        `${workload.kind.toLowerCase()}/${workload.name}`,
        "--timeout=180s",
      ]);
    }
  });
});
