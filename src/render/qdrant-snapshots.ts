import type { ICronJob } from "kubernetes-models/batch/v1/CronJob";
import { names, ports, type KubeObject, type Placed, type RenderContext, qdrantEnabled } from "./context.ts";
import { restrictedContainer, restrictedPod } from "./pod.ts";

export const QDRANT_SNAPSHOT_JOB = "qdrant-snapshot";
const SNAPSHOT_UID = 1000;

/**
 * Takes a full snapshot on every Qdrant node through its HTTP API (Qdrant writes it into its
 * snapshots volume), then deletes all but the newest `keep`. Snapshot names carry their UTC time, so
 * a lexical sort is a time sort. Fails the Job (and so alerts) when any call fails.
 */
export function snapshotScript(): string {
  return [
    "set -eu",
    "for host in $QDRANT_HOSTS; do",
    '  base="http://$host:$QDRANT_PORT"',
    '  curl -fsS --max-time 1800 -X POST -H "api-key: $QDRANT_API_KEY" "$base/snapshots?wait=true" >/dev/null',
    '  names=$(curl -fsS --max-time 60 -H "api-key: $QDRANT_API_KEY" "$base/snapshots" | grep -o \'"name":"[^"]*"\' | cut -d\'"\' -f4 | sort)',
    '  count=$(printf "%s\\n" "$names" | grep -c . || true)',
    "  excess=$((count - KEEP))",
    '  if [ "$excess" -gt 0 ]; then',
    '    for name in $(printf "%s\\n" "$names" | head -n "$excess"); do',
    '      curl -fsS --max-time 300 -X DELETE -H "api-key: $QDRANT_API_KEY" "$base/snapshots/$name?wait=true" >/dev/null',
    '      echo "$host: deleted $name"',
    "    done",
    "  fi",
    '  echo "$host: snapshot taken; $((count < KEEP ? count : KEEP)) kept"',
    "done",
  ].join("\n");
}

export function renderQdrantSnapshots(ctx: RenderContext): Placed[] {
  const { spec } = ctx.platform;
  const backups = spec.qdrant.backups;
  if (!qdrantEnabled(spec) || !backups.enabled) return [];
  const hosts = Array.from({ length: spec.qdrant.replicas }, (_, i) => `${names.qdrant}-${i}.${ctx.serviceHost(names.qdrantHeadless)}`);
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
                    { name: "QDRANT_PORT", value: String(ports.qdrantHttp) },
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
