import { isVllmContainer } from "../../plan/vram.ts";
import { defineRule } from "../finding.ts";
import { containersOf, type ContainerLike, type PodTemplate, type ProbeLike } from "../inventory.ts";
import type { Finding } from "../types.ts";

/** Paths each image writes to; with a read-only root they must be volumes. */
function writablePaths(container: ContainerLike): string[] {
  const image = container.image ?? "";
  const env = (name: string) => container.env?.find((e) => e.name === name)?.value;
  const paths: string[] = [];
  // Node services (our engine and gateway images) write temp files; Python's vLLM writes caches too.
  if (/diatonic|node:/.test(image)) paths.push("/tmp");
  if (/qdrant/.test(image)) {
    const init = env("QDRANT_INIT_FILE_PATH");
    paths.push("/qdrant/storage", "/qdrant/snapshots", init ? init.slice(0, init.lastIndexOf("/")) : "/qdrant");
  }
  if (isVllmContainer(container)) paths.push("/tmp", env("HOME") ?? "/root", "/dev/shm");
  return paths;
}

function mountedAt(container: ContainerLike, path: string): boolean {
  return (container.volumeMounts ?? []).some(
    (m) => !m.readOnly && (path === m.mountPath || path.startsWith(`${m.mountPath.replace(/\/$/, "")}/`)),
  );
}

function probePortExists(container: ContainerLike, port: number | string): boolean {
  return typeof port === "number"
    ? (container.ports ?? []).some((p) => p.containerPort === port) || (container.ports ?? []).length === 0
    : (container.ports ?? []).some((p) => p.name === port);
}

function probePort(probe: ProbeLike): number | string | undefined {
  return probe.httpGet?.port ?? probe.tcpSocket?.port ?? probe.grpc?.port;
}

const main = (template: PodTemplate) => containersOf(template).filter((c) => !c.init);

export const workloadRules = [
  defineRule("security/read-only-root", "warning", "containers run with a read-only root filesystem", ({ inventory }, report) =>
    inventory.templates.flatMap((template) =>
      containersOf(template)
        .filter(({ container }) => container.securityContext?.readOnlyRootFilesystem !== true)
        .map(({ container, path }) =>
          report(
            template.owner,
            `${path}.securityContext.readOnlyRootFilesystem`,
            `container ${container.name} can write its root filesystem`,
            "set readOnlyRootFilesystem: true and mount an emptyDir at each path it writes",
          ),
        ),
    ),
  ),
  defineRule("security/writable-paths", "error", "a read-only root has the paths its image writes mounted", ({ inventory }, report) =>
    inventory.templates.flatMap((template) =>
      containersOf(template).flatMap(({ container, path }) => {
        if (container.securityContext?.readOnlyRootFilesystem !== true) return [];
        return writablePaths(container)
          .filter((p) => !mountedAt(container, p))
          .map((p) =>
            report(
              template.owner,
              `${path}.volumeMounts`,
              `container ${container.name} (${container.image ?? "no image"}) writes ${p}, but its root filesystem is read-only and nothing is mounted there`,
              `mount a writable volume (emptyDir or PVC) at ${p}`,
            ),
          );
      }),
    ),
  ),
  defineRule("workload/resources", "error", "containers request CPU and memory and limit memory", ({ inventory }, report) =>
    inventory.templates.flatMap((template) =>
      containersOf(template).flatMap(({ container, path }) => {
        const missing = [
          container.resources?.requests?.["cpu"] ? undefined : "requests.cpu",
          container.resources?.requests?.["memory"] ? undefined : "requests.memory",
          container.resources?.limits?.["memory"] ? undefined : "limits.memory",
        ].filter((m): m is string => m !== undefined);
        return missing.length > 0
          ? [
              report(
                template.owner,
                `${path}.resources`,
                `container ${container.name} has no ${missing.join(", ")}: the scheduler cannot place it well and one leak can starve the node`,
                `set ${missing.join(", ")}`,
              ),
            ]
          : [];
      }),
    ),
  ),
  defineRule("workload/image-pinned", "error", "images are pinned to a version tag or digest", ({ inventory }, report) =>
    inventory.templates.flatMap((template) =>
      containersOf(template).flatMap(({ container, path }) => {
        const image = container.image ?? "";
        const tagged = /@sha256:/.test(image) || /:[^/:]+$/.test(image);
        if (tagged && !/:latest$/.test(image)) return [];
        return [
          report(
            template.owner,
            `${path}.image`,
            `container ${container.name} uses ${image || "no image"}, which can change under you`,
            "pin a version tag (name:1.2.3) or a digest (name@sha256:…)",
          ),
        ];
      }),
    ),
  ),
  defineRule(
    "workload/probes",
    "error",
    "long-running containers that serve a port have readiness and liveness probes",
    ({ inventory }, report) =>
      inventory.templates
        .filter((t) => t.longRunning)
        .flatMap((template) =>
          main(template).flatMap(({ container, path }) => {
            if ((container.ports ?? []).length === 0) return [];
            const missing = [
              container.readinessProbe ? undefined : "readinessProbe",
              container.livenessProbe ? undefined : "livenessProbe",
            ].filter((m): m is string => m !== undefined);
            return missing.length > 0
              ? [
                  report(
                    template.owner,
                    path,
                    `container ${container.name} has no ${missing.join(" or ")}: traffic reaches it before it is ready, or a hung process is never restarted`,
                    `add ${missing.join(" and ")} on its health endpoint`,
                    template.owner.kind === "DaemonSet" ? "warning" : "error",
                  ),
                ]
              : [];
          }),
        ),
  ),
  defineRule("workload/probe-port", "error", "every probe targets a port the container declares", ({ inventory }, report) =>
    inventory.templates.flatMap((template) =>
      main(template).flatMap(({ container, path }) =>
        (["readinessProbe", "livenessProbe", "startupProbe"] as const).flatMap((kind): Finding[] => {
          const probe = container[kind];
          const port = probe ? probePort(probe) : undefined;
          if (port === undefined || probePortExists(container, port)) return [];
          return [
            report(
              template.owner,
              `${path}.${kind}`,
              `${kind} of ${container.name} targets port ${JSON.stringify(port)}, which the container does not declare: the probe always fails`,
              `use one of its ports: ${(container.ports ?? []).map((p) => p.name ?? p.containerPort).join(", ")}`,
            ),
          ];
        }),
      ),
    ),
  ),
  defineRule("workload/selector-labels", "error", "a workload's selector matches its own pod template", ({ inventory }, report) =>
    inventory.templates.flatMap((template): Finding[] => {
      const selector = (template.owner as unknown as { spec?: { selector?: { matchLabels?: Record<string, string> } } }).spec?.selector
        ?.matchLabels;
      if (!selector || template.owner.kind === "Job" || template.owner.kind === "CronJob") return [];
      const wrong = Object.entries(selector).filter(([k, v]) => template.labels[k] !== v);
      return wrong.length > 0
        ? [
            report(
              template.owner,
              "spec.selector.matchLabels",
              `selector ${wrong.map(([k, v]) => `${k}=${v}`).join(", ")} does not match the template's labels: the API server rejects it`,
              "derive selector and template labels from the same map",
            ),
          ]
        : [];
    }),
  ),
  defineRule(
    "workload/model-load-startup",
    "warning",
    "GPU engines allow a model load before liveness restarts them",
    ({ inventory }, report) =>
      inventory.templates.flatMap((template) =>
        main(template).flatMap(({ container, path }): Finding[] => {
          if (!isVllmContainer(container)) return [];
          const probe = container.startupProbe;
          const allowed = probe ? (probe.periodSeconds ?? 10) * (probe.failureThreshold ?? 3) + (probe.initialDelaySeconds ?? 0) : 0;
          return allowed >= 600
            ? []
            : [
                report(
                  template.owner,
                  `${path}.startupProbe`,
                  `the engine gets ${allowed}s to load the model before liveness can kill it; loading weights takes minutes`,
                  "add a startupProbe on /health with periodSeconds × failureThreshold ≥ 600",
                ),
              ];
        }),
      ),
  ),
];
