import type { KubeObject } from "../../render/context.ts";
import { defineRule } from "../finding.ts";
import { containersOf, type Inventory, type PodTemplate } from "../inventory.ts";
import type { Finding } from "../types.ts";

interface ServiceLike {
  readonly spec?: {
    readonly selector?: Record<string, string>;
    readonly clusterIP?: string;
    readonly type?: string;
    readonly ports?: readonly { readonly name?: string; readonly port: number; readonly targetPort?: number | string }[];
  };
}

const serviceSpec = (s: KubeObject) => (s as unknown as ServiceLike).spec;

function servicePortExists(service: KubeObject, port: { readonly name?: string; readonly number?: number }): boolean {
  return (serviceSpec(service)?.ports ?? []).some((p) => (port.name !== undefined ? p.name === port.name : p.port === port.number));
}

function containerPortExists(template: PodTemplate, target: number | string): boolean {
  return containersOf(template).some(({ container }) =>
    (container.ports ?? []).some((p) => (typeof target === "number" ? p.containerPort === target : p.name === target)),
  );
}

interface IngressLike {
  readonly spec?: {
    readonly tls?: readonly { readonly hosts?: readonly string[]; readonly secretName?: string }[];
    readonly rules?: readonly {
      readonly host?: string;
      readonly http?: {
        readonly paths: readonly {
          readonly backend: {
            readonly service?: { readonly name: string; readonly port?: { readonly name?: string; readonly number?: number } };
          };
        }[];
      };
    }[];
    readonly defaultBackend?: {
      readonly service?: { readonly name: string; readonly port?: { readonly name?: string; readonly number?: number } };
    };
  };
}

type RefKind = "secret" | "configMap";

/** Every Secret or ConfigMap a pod reads: volumes, env valueFrom and envFrom. */
function refsOf(template: PodTemplate, kind: RefKind): { name: string; path: string; optional: boolean }[] {
  const refs: { name: string; path: string; optional: boolean }[] = [];
  (template.spec.volumes ?? []).forEach((v, i) => {
    const source = kind === "secret" ? (v.secret ? { name: v.secret.secretName, optional: v.secret.optional } : undefined) : v.configMap;
    if (source) refs.push({ name: source.name, path: `${template.path}.volumes[${i}].${kind}`, optional: source.optional === true });
  });
  for (const { container, path } of containersOf(template)) {
    (container.env ?? []).forEach((e, i) => {
      const ref = kind === "secret" ? e.valueFrom?.secretKeyRef : e.valueFrom?.configMapKeyRef;
      if (ref) refs.push({ name: ref.name, path: `${path}.env[${i}]`, optional: ref.optional === true });
    });
    (container.envFrom ?? []).forEach((e, i) => {
      const ref = kind === "secret" ? e.secretRef : e.configMapRef;
      if (ref) refs.push({ name: ref.name, path: `${path}.envFrom[${i}]`, optional: ref.optional === true });
    });
  }
  return refs;
}

function backendFinding(
  inventory: Inventory,
  owner: KubeObject,
  path: string,
  name: string,
  port: { readonly name?: string; readonly number?: number } | undefined,
  report: (o: KubeObject, p: string, m: string, f: string) => Finding,
): Finding[] {
  const namespace = owner.metadata.namespace ?? "default";
  const service = inventory.get("Service", namespace, name);
  if (!service) {
    const known = inventory
      .ofKind("Service")
      .filter((s) => s.metadata.namespace === namespace)
      .map((s) => s.metadata.name);
    return [
      report(
        owner,
        path,
        `routes to Service ${namespace}/${name}, which does not exist: requests get 503`,
        known.length > 0 ? `use one of: ${known.join(", ")}` : "create the Service or fix the name",
      ),
    ];
  }
  if (port && !servicePortExists(service, port)) {
    return [
      report(
        owner,
        path,
        `routes to port ${port.name ?? port.number} of Service ${name}, which has no such port`,
        `use one of: ${(serviceSpec(service)?.ports ?? []).map((p) => p.name ?? p.port).join(", ")}`,
      ),
    ];
  }
  return [];
}

export const wiringRules = [
  defineRule("wiring/service-selector", "error", "every Service with a selector selects some pods", ({ inventory }, report) =>
    inventory.ofKind("Service").flatMap((service): Finding[] => {
      const selector = serviceSpec(service)?.selector;
      if (!selector || Object.keys(selector).length === 0) return [];
      return inventory.podsMatching(service.metadata.namespace ?? "default", selector).length > 0
        ? []
        : [
            report(
              service,
              "spec.selector",
              `selects no pods (${Object.entries(selector)
                .map(([k, v]) => `${k}=${v}`)
                .join(", ")}): it has no endpoints`,
              "make the selector match the workload's pod template labels",
            ),
          ];
    }),
  ),
  defineRule("wiring/service-target-port", "error", "a Service's targetPort exists on the pods it selects", ({ inventory }, report) =>
    inventory.ofKind("Service").flatMap((service) => {
      const spec = serviceSpec(service);
      const pods = inventory.podsMatching(service.metadata.namespace ?? "default", spec?.selector);
      if (pods.length === 0) return [];
      return (spec?.ports ?? []).flatMap((port, i): Finding[] => {
        const target = port.targetPort ?? port.port;
        const broken = pods.filter((t) => !containerPortExists(t, target));
        return broken.length > 0
          ? [
              report(
                service,
                `spec.ports[${i}].targetPort`,
                `targetPort ${JSON.stringify(target)} matches no container port of ${broken.map((t) => t.resource).join(", ")}: connections are refused`,
                "set targetPort to the container port's name or number",
              ),
            ]
          : [];
      });
    }),
  ),
  defineRule("wiring/ingress-backend", "error", "Ingress backends are existing Services and ports", ({ inventory }, report) =>
    inventory.ofKind("Ingress").flatMap((ingress) => {
      const spec = (ingress as unknown as IngressLike).spec;
      const out: Finding[] = [];
      const fallback = spec?.defaultBackend?.service;
      if (fallback) out.push(...backendFinding(inventory, ingress, "spec.defaultBackend", fallback.name, fallback.port, report));
      (spec?.rules ?? []).forEach((rule, r) =>
        (rule.http?.paths ?? []).forEach((p, i) => {
          const service = p.backend.service;
          if (service)
            out.push(
              ...backendFinding(
                inventory,
                ingress,
                `spec.rules[${r}].http.paths[${i}].backend.service`,
                service.name,
                service.port,
                report,
              ),
            );
        }),
      );
      return out;
    }),
  ),
  defineRule("wiring/httpproxy-backend", "error", "HTTPProxy routes point at existing Services and ports", ({ inventory }, report) =>
    inventory.ofKind("HTTPProxy").flatMap((proxy) => {
      const routes = (proxy as unknown as { spec?: { routes?: { services?: { name: string; port: number }[] }[] } }).spec?.routes ?? [];
      return routes.flatMap((route, r) =>
        (route.services ?? []).flatMap((s, i) =>
          backendFinding(inventory, proxy, `spec.routes[${r}].services[${i}]`, s.name, { number: s.port }, report),
        ),
      );
    }),
  ),
  defineRule(
    "wiring/tls-certificate",
    "error",
    "an Ingress TLS secret is issued by a Certificate covering its hosts",
    ({ inventory }, report) =>
      inventory.ofKind("Ingress").flatMap((ingress) => {
        const namespace = ingress.metadata.namespace ?? "default";
        const certificates = inventory.ofKind("Certificate").filter((c) => c.metadata.namespace === namespace) as unknown as {
          metadata: { name: string };
          spec?: { secretName?: string; dnsNames?: string[] };
        }[];
        return ((ingress as unknown as IngressLike).spec?.tls ?? []).flatMap((tls, i): Finding[] => {
          if (!tls.secretName)
            return [
              report(
                ingress,
                `spec.tls[${i}].secretName`,
                "TLS without a secretName serves the controller's default certificate",
                "name the Secret a Certificate writes",
              ),
            ];
          if (inventory.get("Secret", namespace, tls.secretName)) return [];
          const cert = certificates.find((c) => c.spec?.secretName === tls.secretName);
          if (!cert)
            return [
              report(
                ingress,
                `spec.tls[${i}].secretName`,
                `no Certificate writes Secret ${tls.secretName}: the ingress serves a default certificate`,
                `add a cert-manager Certificate with secretName: ${tls.secretName}`,
              ),
            ];
          const uncovered = (tls.hosts ?? []).filter((h) => !(cert.spec?.dnsNames ?? []).includes(h));
          return uncovered.length > 0
            ? [
                report(
                  ingress,
                  `spec.tls[${i}].hosts`,
                  `Certificate ${cert.metadata.name} does not cover ${uncovered.join(", ")}: clients see a name mismatch`,
                  `add ${uncovered.join(", ")} to its dnsNames`,
                ),
              ]
            : [];
        });
      }),
  ),
  defineRule("wiring/issuer-ref", "error", "Certificates name an issuer that exists", ({ inventory }, report) =>
    inventory.ofKind("Certificate").flatMap((cert): Finding[] => {
      const ref = (cert as unknown as { spec?: { issuerRef?: { name: string; kind?: string } } }).spec?.issuerRef;
      if (!ref) return [];
      const kind = ref.kind ?? "Issuer";
      const found =
        kind === "ClusterIssuer"
          ? inventory.get("ClusterIssuer", undefined, ref.name)
          : inventory.get("Issuer", cert.metadata.namespace, ref.name);
      return found
        ? []
        : [
            report(
              cert,
              "spec.issuerRef",
              `${kind} ${ref.name} is not among the objects: the certificate stays not Ready`,
              `create ${kind} ${ref.name} or point issuerRef at one that exists (${
                inventory
                  .ofKind("ClusterIssuer")
                  .map((i) => i.metadata.name)
                  .join(", ") || "none"
              })`,
            ),
          ];
    }),
  ),
  defineRule("wiring/service-account", "error", "pods run as a ServiceAccount that exists", ({ inventory }, report) =>
    inventory.templates.flatMap((template): Finding[] => {
      const name = template.spec.serviceAccountName;
      if (!name || name === "default" || inventory.get("ServiceAccount", template.namespace, name)) return [];
      return [
        report(
          template.owner,
          `${template.path}.serviceAccountName`,
          `ServiceAccount ${template.namespace}/${name} does not exist: the pod is never created`,
          `create ServiceAccount ${name} in ${template.namespace}`,
        ),
      ];
    }),
  ),
  defineRule("wiring/configmap-ref", "error", "referenced ConfigMaps exist", ({ inventory }, report) =>
    inventory.templates.flatMap((template) =>
      refsOf(template, "configMap")
        .filter((ref) => !ref.optional && !inventory.get("ConfigMap", template.namespace, ref.name))
        .map((ref) =>
          report(
            template.owner,
            ref.path,
            `ConfigMap ${template.namespace}/${ref.name} does not exist: the pod stays in ContainerCreating`,
            `create ConfigMap ${ref.name} or mark the reference optional`,
          ),
        ),
    ),
  ),
  defineRule("wiring/secret-ref", "error", "referenced Secrets are declared as required (or rendered)", ({ inventory, env }, report) =>
    inventory.templates.flatMap((template) =>
      refsOf(template, "secret").flatMap((ref): Finding[] => {
        if (ref.optional || inventory.get("Secret", template.namespace, ref.name)) return [];
        if (!env.requiredSecrets)
          return [
            report(
              template.owner,
              ref.path,
              `Secret ${template.namespace}/${ref.name} must exist in the cluster before apply`,
              `create it (kubectl -n ${template.namespace} create secret generic ${ref.name} …)`,
              "info",
            ),
          ];
        const declared = env.requiredSecrets.some((s) => s.name === ref.name && s.namespace === template.namespace);
        return declared
          ? []
          : [
              report(
                template.owner,
                ref.path,
                `Secret ${template.namespace}/${ref.name} is used but not in the platform's list of required Secrets: nobody will know to create it`,
                "declare it in the spec (it then appears in SECRETS.md) or remove the reference",
              ),
            ];
      }),
    ),
  ),
  defineRule(
    "wiring/pvc-ref",
    "warning",
    "mounted PersistentVolumeClaims are part of the platform or declared existing",
    ({ inventory, env }, report) =>
      inventory.templates.flatMap((template) =>
        (template.spec.volumes ?? []).flatMap((volume, i): Finding[] => {
          const claim = volume.persistentVolumeClaim?.claimName;
          if (!claim || inventory.get("PersistentVolumeClaim", template.namespace, claim)) return [];
          const source = env.platform?.spec.model.source;
          if (source && "existingClaim" in source && source.existingClaim.name === claim) return [];
          return [
            report(
              template.owner,
              `${template.path}.volumes[${i}]`,
              `PersistentVolumeClaim ${template.namespace}/${claim} is not among the objects: the pod stays Pending unless it already exists`,
              `create the claim, or declare it as model.source.existingClaim`,
            ),
          ];
        }),
      ),
  ),
];
