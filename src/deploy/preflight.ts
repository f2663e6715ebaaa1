import { unlessForbidden, type KubeClient } from "../kube/client.ts";
import type { KubeObject, RequiredSecret } from "../render/context.ts";
import type { ValidationResult } from "../validate/index.ts";
import { gpuChecks } from "./gpu-capacity.ts";
import { metricsApiChecks } from "./metrics-apis.ts";

export interface PreflightCheck {
  readonly check: string;
  readonly ok: boolean;
  /** Problems that do not stop the apply. */
  readonly warning?: boolean;
  readonly message: string;
  readonly fix?: string;
}

const BUILT_IN_GROUPS = new Set([
  "",
  "apps",
  "batch",
  "rbac.authorization.k8s.io",
  "networking.k8s.io",
  "policy",
  "autoscaling",
  "storage.k8s.io",
  "apiextensions.k8s.io",
]);

const CRD_HINTS: Record<string, string> = {
  "cert-manager.io":
    "install cert-manager (its CRDs and controller), e.g. helm install cert-manager jetstack/cert-manager --set crds.enabled=true",
  "monitoring.coreos.com": "install prometheus-operator (kube-prometheus-stack), or set monitoring.prometheusOperator: false",
  "projectcontour.io": "install Contour, or use ingress.className: nginx",
};

function group(apiVersion: string): string {
  return apiVersion.includes("/") ? (apiVersion.split("/")[0] ?? "") : "";
}

/**
 * Controllers the platform's objects wait on, found by the labels their official installs (Helm
 * chart and static manifest) put on the controller's Deployment.
 */
const CONTROLLERS: readonly {
  readonly group: string;
  readonly name: string;
  readonly selector: string;
  readonly install: string;
  readonly without: string;
}[] = [
  {
    group: "cert-manager.io",
    name: "cert-manager",
    selector: "app.kubernetes.io/name=cert-manager",
    install: CRD_HINTS["cert-manager.io"] as string,
    without:
      "Certificates and issuers get no status, and the certificates phase stops once it sees that no cert-manager leader holds its lease",
  },
];

/**
 * Warns when a controller the platform's objects need does not run: its CRDs alone let the apply
 * through, and the wait then ends in a timeout that does not say why. A warning, not a refusal:
 * an install under other labels is not found here. Skipped when these credentials cannot list
 * Deployments cluster-wide.
 */
export async function controllerChecks(client: KubeClient, objects: readonly KubeObject[]): Promise<PreflightCheck[]> {
  const groups = new Set(objects.map((o) => group(o.apiVersion)));
  const checks: PreflightCheck[] = [];
  for (const controller of CONTROLLERS) {
    if (!groups.has(controller.group)) continue;
    const found = await unlessForbidden(
      client.list<KubeObject & { status?: { availableReplicas?: number } }>("apps/v1", "Deployment", undefined, controller.selector),
    );
    if (found === undefined) continue;
    const names = found.map((d) => `${d.metadata.namespace ?? ""}/${d.metadata.name}`).join(", ");
    if (found.some((d) => (d.status?.availableReplicas ?? 0) > 0)) {
      checks.push({ check: "controllers", ok: true, message: `${controller.name} runs (Deployment ${names})` });
    } else {
      const message =
        found.length === 0
          ? `no ${controller.name} controller found (no Deployment labelled ${controller.selector}): ${controller.without}`
          : `${controller.name}'s controller (Deployment ${names}) has no available replica: ${controller.without}`;
      const fix =
        found.length === 0
          ? `${controller.install}; if it runs under other labels, ignore this`
          : `kubectl -n ${found[0]?.metadata.namespace ?? ""} describe deployment ${found[0]?.metadata.name ?? ""} says why`;
      checks.push({ check: "controllers", ok: true, warning: true, message, fix });
    }
  }
  return checks;
}

/**
 * validate's rules over what is about to be applied: an error stops the apply as any failed check
 * does (the engine that does not fit its GPU, a policy that cuts a needed flow), a warning is shown.
 */
export function ruleChecks(validation: ValidationResult): PreflightCheck[] {
  const shown = validation.findings.filter((f) => f.severity !== "info");
  if (shown.length === 0) return [{ check: "rules", ok: true, message: `the ${validation.objects} objects pass diatonic validate` }];
  return shown.map((f) => ({
    check: "rules",
    ok: f.severity !== "error",
    ...(f.severity === "warning" ? { warning: true } : {}),
    // Most messages begin with the object they are about: it is not named twice.
    message: f.message.startsWith(f.resource)
      ? `${f.ruleId}: ${f.message}`
      : `${f.ruleId} ${f.resource}${f.file ? ` (${f.file})` : ""}: ${f.message}`,
    fix: f.fix,
  }));
}

export interface PreflightInput {
  readonly objects: readonly KubeObject[];
  /** validate's findings over `objects`, for a spec's apply (a rollback re-applies what was applied before). */
  readonly validation?: ValidationResult;
  readonly secrets: readonly RequiredSecret[];
  /** Secrets whose absence is allowed (optional mounts). */
  readonly optionalSecrets: readonly string[];
}

/**
 * The namespaces the objects go into that the apply does not create must exist; and a namespace it
 * creates, but that a required Secret has to be created in first, is named once, as the first step.
 * diff gives the same explanation (it cannot dry-run objects into a namespace that does not exist).
 */
export async function namespaceChecks(
  client: KubeClient,
  objects: readonly KubeObject[],
  required: readonly RequiredSecret[] = [],
): Promise<PreflightCheck[]> {
  const checks: PreflightCheck[] = [];
  const namespaces = new Set(objects.filter((o) => o.kind === "Namespace").map((o) => o.metadata.name));
  const seen = new Map<string, boolean>();
  const namespaceExists = async (name: string): Promise<boolean> => {
    const known = seen.get(name);
    if (known !== undefined) return known;
    const exists = (await client.get({ apiVersion: "v1", kind: "Namespace", metadata: { name } })) !== undefined;
    seen.set(name, exists);
    return exists;
  };
  const used = new Set(
    objects.flatMap((o) => (o.metadata.namespace && !namespaces.has(o.metadata.namespace) ? [o.metadata.namespace] : [])),
  );
  for (const ns of [...used].sort()) {
    const exists = await namespaceExists(ns);
    const users = objects.filter((o) => o.metadata.namespace === ns).map((o) => `${o.kind}/${o.metadata.name}`);
    checks.push(
      exists
        ? { check: "namespaces", ok: true, message: `namespace ${ns} exists` }
        : {
            check: "namespaces",
            ok: false,
            message: `namespace ${ns} does not exist, and ${users.slice(0, 3).join(", ")}${users.length > 3 ? ", …" : ""} ${users.length === 1 ? "goes" : "go"} there`,
            fix:
              ns === "cert-manager"
                ? "install cert-manager (it creates the namespace), or set certificates.selfSigned.clusterResourceNamespace"
                : `kubectl create namespace ${ns}, or point the spec elsewhere (e.g. monitoring.namespace)`,
          },
    );
  }
  for (const ns of [...new Set(required.map((secret) => secret.namespace))].sort()) {
    if (!namespaces.has(ns) || (await namespaceExists(ns))) continue;
    const names = required.filter((secret) => secret.namespace === ns).map((secret) => secret.name);
    checks.push({
      check: "namespaces",
      ok: false,
      message: `namespace ${ns} does not exist yet: apply creates it, but the Secrets ${names.join(", ")} must be created in it first`,
      fix: `kubectl create namespace ${ns}, then create the Secrets below`,
    });
  }
  return checks;
}

/** Checks the cluster can take the platform, before anything is changed. */
export async function preflight(client: KubeClient, input: PreflightInput): Promise<PreflightCheck[]> {
  const checks: PreflightCheck[] = input.validation ? ruleChecks(input.validation) : [];
  const version = await client.version();
  const minor = Number.parseInt(version.minor, 10);
  checks.push(
    minor >= 27 || Number.isNaN(minor)
      ? { check: "cluster", ok: true, message: `reachable at ${client.server}, Kubernetes ${version.gitVersion}` }
      : {
          check: "cluster",
          ok: false,
          message: `Kubernetes ${version.gitVersion} is older than 1.27`,
          fix: "upgrade the cluster to 1.27 or newer",
        },
  );

  const kinds = new Map<string, KubeObject>();
  for (const o of input.objects) kinds.set(`${o.apiVersion}|${o.kind}`, o);
  for (const o of kinds.values()) {
    const g = group(o.apiVersion);
    if (BUILT_IN_GROUPS.has(g)) continue;
    const served = await client.describe(o.apiVersion, o.kind);
    if (!served) {
      checks.push({
        check: "crds",
        ok: false,
        message: `the cluster does not serve ${o.kind} (${o.apiVersion})`,
        fix: CRD_HINTS[g] ?? `install the CRD for ${o.kind}`,
      });
      continue;
    }
    const crd = await client.get<KubeObject & { status?: { conditions?: { type: string; status: string }[] } }>({
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: `${served.plural}.${g}` },
    });
    const established = crd?.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") ?? true;
    checks.push(
      established
        ? { check: "crds", ok: true, message: `${o.kind}.${g} is established` }
        : {
            check: "crds",
            ok: false,
            message: `CRD ${served.plural}.${g} is not Established yet`,
            fix: "wait for the CRD to be established, then run apply again",
          },
    );
  }

  checks.push(...(await controllerChecks(client, input.objects)));
  checks.push(...(await metricsApiChecks(client, input.objects)));

  checks.push(
    ...(await namespaceChecks(
      client,
      input.objects,
      input.secrets.filter((secret) => !input.optionalSecrets.includes(secret.name)),
    )),
  );
  for (const secret of input.secrets) {
    const optional = input.optionalSecrets.includes(secret.name);
    const live = await client.get<KubeObject & { data?: Record<string, string> }>({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: secret.name, namespace: secret.namespace },
    });
    if (!live) {
      checks.push({
        check: "secrets",
        ok: optional,
        warning: optional,
        message: `Secret ${secret.namespace}/${secret.name} does not exist (${secret.purpose})`,
        fix: secret.create,
      });
    } else if (!live.data || !(secret.key in live.data)) {
      checks.push({
        check: "secrets",
        ok: optional,
        warning: optional,
        message: `Secret ${secret.namespace}/${secret.name} has no key ${secret.key} (it has: ${Object.keys(live.data ?? {}).join(", ") || "none"})`,
        fix: `recreate it with the key ${secret.key}: ${secret.create}`,
      });
    } else {
      checks.push({ check: "secrets", ok: true, message: `Secret ${secret.namespace}/${secret.name} has key ${secret.key}` });
    }
  }

  checks.push(...(await gpuChecks(client, input.objects)));

  const classes = new Set<string>();
  for (const o of input.objects) {
    const spec = (
      o as unknown as { spec?: { storageClassName?: string; volumeClaimTemplates?: { spec?: { storageClassName?: string } }[] } }
    ).spec;
    if (o.kind === "PersistentVolumeClaim" && spec?.storageClassName) classes.add(spec.storageClassName);
    for (const t of o.kind === "StatefulSet" ? (spec?.volumeClaimTemplates ?? []) : [])
      if (t.spec?.storageClassName) classes.add(t.spec.storageClassName);
  }
  if (classes.size > 0) {
    const existing = (await client.list("storage.k8s.io/v1", "StorageClass")).map((s) => s.metadata.name);
    for (const name of classes) {
      checks.push(
        existing.includes(name)
          ? { check: "storage", ok: true, message: `storage class ${name} exists` }
          : {
              check: "storage",
              ok: false,
              message: `storage class ${name} does not exist (the cluster has: ${existing.join(", ") || "none"})`,
              fix: `set storageClass in the spec to one of: ${existing.join(", ") || "(install a provisioner)"}`,
            },
      );
    }
  }
  return checks;
}
