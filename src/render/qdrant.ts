import type { IStatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IService } from "kubernetes-models/v1/Service";
import { toYaml } from "../write/yaml.ts";
import { names, ports, type KubeObject, type Placed, type RenderContext, qdrantEnabled } from "./context.ts";
import { httpProbe, resourcesOf, restrictedContainer, restrictedPod } from "./pod.ts";

const QDRANT_UID = 1000;

/**
 * Qdrant as a StatefulSet: data and snapshots on their own claims, API key from a Secret, cluster
 * mode (Raft over the headless Service) when there is more than one replica. It runs non-root with a
 * read-only root: the init marker and temp files go to mounted volumes.
 */
export function renderQdrant(ctx: RenderContext): Placed[] {
  const { spec } = ctx.platform;
  if (!qdrantEnabled(spec)) return [];
  const q = spec.qdrant;
  const clustered = q.replicas > 1;
  const config: IConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: ctx.meta(names.qdrantConfig, "vector-store"),
    data: {
      "production.yaml": toYaml({
        log_level: "INFO",
        storage: { storage_path: "/qdrant/storage", snapshots_path: "/qdrant/snapshots", temp_path: "/qdrant/snapshots/tmp" },
        service: { http_port: ports.qdrantHttp, grpc_port: ports.qdrantGrpc, enable_tls: false },
        cluster: { enabled: clustered, p2p: { port: ports.qdrantP2p } },
        telemetry_disabled: true,
      }),
    },
  };
  const peerHost = `$(POD_NAME).${ctx.serviceHost(names.qdrantHeadless)}`;
  const args = clustered
    ? [
        "sh",
        "-c",
        // Pod 0 bootstraps the Raft cluster; the others join it through the headless Service.
        `if [ "\${POD_NAME##*-}" = "0" ]; then exec ./qdrant --uri "http://${peerHost}:${ports.qdrantP2p}"; else exec ./qdrant --bootstrap "http://${names.qdrant}-0.${ctx.serviceHost(names.qdrantHeadless)}:${ports.qdrantP2p}" --uri "http://${peerHost}:${ports.qdrantP2p}"; fi`,
      ]
    : undefined;
  const statefulSet: IStatefulSet = {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: ctx.meta(names.qdrant, "vector-store"),
    spec: {
      serviceName: names.qdrantHeadless,
      replicas: q.replicas,
      podManagementPolicy: "Parallel",
      updateStrategy: { type: "RollingUpdate" },
      selector: { matchLabels: ctx.selector(names.qdrant) },
      // Scaling down or deleting the set never deletes the data claims.
      persistentVolumeClaimRetentionPolicy: { whenDeleted: "Retain", whenScaled: "Retain" },
      template: {
        metadata: { labels: ctx.labels(names.qdrant, "vector-store") },
        spec: {
          serviceAccountName: names.qdrant,
          automountServiceAccountToken: false,
          securityContext: restrictedPod(QDRANT_UID),
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: "qdrant",
              image: q.image,
              ...(args ? { command: args } : {}),
              ports: [
                { name: "http", containerPort: ports.qdrantHttp, protocol: "TCP" as const },
                { name: "grpc", containerPort: ports.qdrantGrpc, protocol: "TCP" as const },
                { name: "p2p", containerPort: ports.qdrantP2p, protocol: "TCP" as const },
              ],
              env: [
                { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
                { name: "QDRANT__SERVICE__API_KEY", valueFrom: { secretKeyRef: { name: q.apiKeySecret.name, key: q.apiKeySecret.key } } },
                { name: "QDRANT_INIT_FILE_PATH", value: "/qdrant/init/.qdrant-initialized" },
              ],
              resources: resourcesOf(q.resources),
              // Qdrant serves /readyz and /livez without the API key.
              readinessProbe: httpProbe("/readyz", "http", { period: 5, failures: 6 }),
              livenessProbe: httpProbe("/livez", "http", { period: 10, failures: 6 }),
              startupProbe: httpProbe("/livez", "http", { period: 5, failures: 60 }),
              securityContext: restrictedContainer(),
              volumeMounts: [
                { name: "data", mountPath: "/qdrant/storage" },
                { name: "snapshots", mountPath: "/qdrant/snapshots" },
                { name: "config", mountPath: "/qdrant/config/production.yaml", subPath: "production.yaml", readOnly: true },
                { name: "init", mountPath: "/qdrant/init" },
              ],
            },
          ],
          volumes: [
            { name: "config", configMap: { name: names.qdrantConfig } },
            { name: "init", emptyDir: { sizeLimit: "16Mi" } },
          ],
        },
      },
      volumeClaimTemplates: (["data", "snapshots"] as const).map((claim) => ({
        metadata: { name: claim, labels: ctx.selector(names.qdrant) },
        spec: {
          accessModes: ["ReadWriteOnce"],
          storageClassName: spec.storageClass,
          resources: { requests: { storage: claim === "data" ? q.storage : q.snapshots } },
        },
      })),
    },
  };
  const servicePorts = [
    { name: "http", port: ports.qdrantHttp, targetPort: "http", protocol: "TCP" as const },
    { name: "grpc", port: ports.qdrantGrpc, targetPort: "grpc", protocol: "TCP" as const },
  ];
  const headless: IService = {
    apiVersion: "v1",
    kind: "Service",
    metadata: ctx.meta(names.qdrantHeadless, "vector-store"),
    spec: {
      clusterIP: "None",
      publishNotReadyAddresses: true,
      selector: ctx.selector(names.qdrant),
      ports: [...servicePorts, { name: "p2p", port: ports.qdrantP2p, targetPort: "p2p", protocol: "TCP" as const }],
    },
  };
  const service: IService = {
    apiVersion: "v1",
    kind: "Service",
    metadata: ctx.meta(names.qdrant, "vector-store"),
    spec: { selector: ctx.selector(names.qdrant), ports: servicePorts },
  };
  return [config, statefulSet, headless, service].map((object) => ({ object: object as KubeObject, component: "qdrant" }));
}
