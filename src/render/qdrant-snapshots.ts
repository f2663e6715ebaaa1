import type { ICronJob } from "kubernetes-models/batch/v1/CronJob";
import { names, ports, type KubeObject, type Placed, type RenderContext, qdrantEnabled } from "./context.ts";
import { restrictedContainer, restrictedPod } from "./pod.ts";

export const QDRANT_SNAPSHOT_JOB = "qdrant-snapshot";
const SNAPSHOT_UID = 1000;

/**
 * Snapshots every Qdrant node through its HTTP API (Qdrant writes them into its snapshots volume),
 * then deletes all but the newest `KEEP`. Snapshot names end in their UTC time, so within one node
 * (and one collection) a lexical sort is a time sort. Fails the Job (and so alerts) when a call fails.
 *
 * `SNAPSHOT_SCOPE`: `storage` takes one full-storage snapshot per node, which a single node restores
 * from at start (`--storage-snapshot`). Qdrant does not support those in distributed mode ("only
 * suitable for single-node deployments": they lack what a cluster peer needs), so a cluster
 * (`collections`) takes a snapshot of each collection on each node instead: what that node holds of
 * it, which Qdrant recovers per collection and node (`/collections/NAME/snapshots/upload`).
 * `QDRANT_HOSTS`: host:port of every node. Collection names are ours (DNS labels): no quoting needed.
 */
export function snapshotScript(): string {
  return [
    "set -eu",
    'auth="api-key: $QDRANT_API_KEY"',
    "# names URL: the snapshot (or collection) names listed at URL, sorted; fails when the call does.",
    "names() {",
    '  listing=$(curl -fsS --max-time 60 -H "$auth" "$1")',
    '  printf "%s" "$listing" | grep -o \'"name":"[^"]*"\' | cut -d\'"\' -f4 | sort || true',
    "}",
    "# snapshot URL LABEL: take a snapshot at URL, then keep the newest KEEP there.",
    "snapshot() {",
    '  curl -fsS --max-time 1800 -X POST -H "$auth" "$1?wait=true" >/dev/null',
    '  taken=$(names "$1")',
    '  count=$(printf "%s\\n" "$taken" | grep -c . || true)',
    "  excess=$((count - KEEP))",
    '  if [ "$excess" -gt 0 ]; then',
    '    for name in $(printf "%s\\n" "$taken" | head -n "$excess"); do',
    '      curl -fsS --max-time 300 -X DELETE -H "$auth" "$1/$name?wait=true" >/dev/null',
    '      echo "$2: deleted $name"',
    "    done",
    "  fi",
    '  echo "$2: snapshot taken; $((count < KEEP ? count : KEEP)) kept"',
    "}",
    "for host in $QDRANT_HOSTS; do",
    '  base="http://$host"',
    '  if [ "$SNAPSHOT_SCOPE" = storage ]; then',
    '    snapshot "$base/snapshots" "$host"',
    "  else",
    '    collections=$(names "$base/collections")',
    '    [ -n "$collections" ] || echo "$host: no collections yet"',
    "    for collection in $collections; do",
    '      snapshot "$base/collections/$collection/snapshots" "$host $collection"',
    "    done",
    "  fi",
    "done",
  ].join("\n");
}

export function renderQdrantSnapshots(ctx: RenderContext): Placed[] {
  const { spec } = ctx.platform;
  const backups = spec.qdrant.backups;
  if (!qdrantEnabled(spec) || !backups.enabled) return [];
  const hosts = Array.from(
    { length: spec.qdrant.replicas },
    (_, i) => `${names.qdrant}-${i}.${ctx.serviceHost(names.qdrantHeadless)}:${ports.qdrantHttp}`,
  );
  const cronJob: ICronJob = {
    apiVersion: "batch/v1",
    kind: "CronJob",
    metadata: ctx.meta(QDRANT_SNAPSHOT_JOB, "vector-store"),
    spec: {
      schedule: backups.schedule,
      timeZone: "Etc/UTC",
      concurrencyPolicy: "Forbid",
      startingDeadlineSeconds: 3600,
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 3,
      jobTemplate: {
        spec: {
          backoffLimit: 2,
          activeDeadlineSeconds: 3600,
          template: {
            metadata: { labels: ctx.labels(QDRANT_SNAPSHOT_JOB, "vector-store") },
            spec: {
              restartPolicy: "Never",
              serviceAccountName: QDRANT_SNAPSHOT_JOB,
              automountServiceAccountToken: false,
              securityContext: restrictedPod(SNAPSHOT_UID),
              containers: [
                {
                  name: "snapshot",
                  image: backups.image,
                  command: ["/bin/sh", "-c", snapshotScript()],
                  env: [
                    { name: "QDRANT_HOSTS", value: hosts.join(" ") },
                    // Several replicas run as a Raft cluster (src/render/qdrant.ts), where full-storage snapshots do not restore.
                    { name: "SNAPSHOT_SCOPE", value: spec.qdrant.replicas > 1 ? "collections" : "storage" },
                    { name: "KEEP", value: String(backups.keep) },
                    {
                      name: "QDRANT_API_KEY",
                      valueFrom: { secretKeyRef: { name: spec.qdrant.apiKeySecret.name, key: spec.qdrant.apiKeySecret.key } },
                    },
                  ],
                  resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { cpu: "200m", memory: "64Mi" } },
                  securityContext: restrictedContainer(),
                },
              ],
            },
          },
        },
      },
    },
  };
  return [{ object: cronJob as KubeObject, component: "qdrant" }];
}
