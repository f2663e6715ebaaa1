import { defineRule } from "../finding.ts";
import { containersOf, type ContainerLike, type PodTemplate } from "../inventory.ts";
import type { Finding, RuleContext, Severity } from "../types.ts";

/** Restricted unless the namespace says otherwise; unknown namespaces are held to restricted as warnings. */
function level(context: RuleContext, template: PodTemplate): { level: "restricted" | "baseline" | "privileged"; severity: Severity } {
  const known = context.inventory.podSecurityLevel(template.namespace);
  return known ? { level: known, severity: "error" } : { level: "restricted", severity: "warning" };
}

function restrictedTemplates(context: RuleContext): { template: PodTemplate; severity: Severity }[] {
  return context.inventory.templates.flatMap((template) => {
    const l = level(context, template);
    return l.level === "restricted" ? [{ template, severity: l.severity }] : [];
  });
}

const effective = <K extends "runAsNonRoot" | "runAsUser">(template: PodTemplate, container: ContainerLike, key: K) =>
  container.securityContext?.[key] ?? template.spec.securityContext?.[key];

export const podSecurityRules = [
  defineRule("psa/run-as-non-root", "error", "Pod Security restricted: pods must set runAsNonRoot", (context, report) =>
    restrictedTemplates(context).flatMap(({ template, severity }) =>
      containersOf(template)
        .filter(({ container }) => effective(template, container, "runAsNonRoot") !== true)
        .map(({ path }) =>
          report(
            template.owner,
            `${path}.securityContext.runAsNonRoot`,
            "runAsNonRoot is not true; Pod Security restricted rejects the pod",
            "set securityContext.runAsNonRoot: true on the pod",
            severity,
          ),
        ),
    ),
  ),
  defineRule("psa/root-user", "error", "no container runs as uid 0 where runAsNonRoot is set or restricted applies", (context, report) =>
    context.inventory.templates.flatMap((template) =>
      containersOf(template).flatMap(({ container, path, init }): Finding[] => {
        if (effective(template, container, "runAsUser") !== 0) return [];
        const nonRoot = effective(template, container, "runAsNonRoot") === true;
        const namespace = level(context, template);
        if (!nonRoot && namespace.level !== "restricted") return [];
        const what = init ? "init container" : "container";
        return [
          report(
            template.owner,
            `${path}.securityContext.runAsUser`,
            nonRoot
              ? `${what} ${container.name} runs as uid 0 while runAsNonRoot is true: the kubelet refuses to start it (CreateContainerConfigError)`
              : `${what} ${container.name} runs as uid 0 in a restricted namespace`,
            `run ${container.name} as a non-zero uid (and make the files it writes group-writable via fsGroup)`,
            // runAsNonRoot with uid 0 always fails; a restricted level that is only assumed warns.
            nonRoot ? "error" : namespace.severity,
          ),
        ];
      }),
    ),
  ),
  defineRule("psa/privilege-escalation", "error", "Pod Security restricted: allowPrivilegeEscalation must be false", (context, report) =>
    restrictedTemplates(context).flatMap(({ template, severity }) =>
      containersOf(template)
        .filter(({ container }) => container.securityContext?.allowPrivilegeEscalation !== false)
        .map(({ container, path }) =>
          report(
            template.owner,
            `${path}.securityContext.allowPrivilegeEscalation`,
            `container ${container.name} may escalate privileges`,
            "set securityContext.allowPrivilegeEscalation: false",
            severity,
          ),
        ),
    ),
  ),
  defineRule(
    "psa/capabilities",
    "error",
    "Pod Security restricted: drop ALL capabilities, add at most NET_BIND_SERVICE",
    (context, report) =>
      restrictedTemplates(context).flatMap(({ template, severity }) =>
        containersOf(template).flatMap(({ container, path }) => {
          const caps = container.securityContext?.capabilities;
          const out: Finding[] = [];
          if (!caps?.drop?.includes("ALL"))
            out.push(
              report(
                template.owner,
                `${path}.securityContext.capabilities.drop`,
                `container ${container.name} keeps Linux capabilities`,
                'set securityContext.capabilities.drop: ["ALL"]',
                severity,
              ),
            );
          const extra = (caps?.add ?? []).filter((c) => c !== "NET_BIND_SERVICE");
          if (extra.length > 0)
            out.push(
              report(
                template.owner,
                `${path}.securityContext.capabilities.add`,
                `container ${container.name} adds ${extra.join(", ")}`,
                "remove the added capabilities; restricted allows only NET_BIND_SERVICE",
                severity,
              ),
            );
          return out;
        }),
      ),
  ),
  defineRule("psa/seccomp", "error", "Pod Security restricted: a RuntimeDefault or Localhost seccomp profile", (context, report) =>
    restrictedTemplates(context).flatMap(({ template, severity }) => {
      const podType = template.spec.securityContext?.seccompProfile?.type;
      return containersOf(template)
        .filter(
          ({ container }) => !["RuntimeDefault", "Localhost"].includes(container.securityContext?.seccompProfile?.type ?? podType ?? ""),
        )
        .map(({ container, path }) =>
          report(
            template.owner,
            `${path}.securityContext.seccompProfile`,
            `container ${container.name} has no RuntimeDefault/Localhost seccomp profile`,
            "set securityContext.seccompProfile.type: RuntimeDefault on the pod",
            severity,
          ),
        );
    }),
  ),
  defineRule("psa/privileged", "error", "no privileged containers outside privileged namespaces", (context, report) =>
    context.inventory.templates.flatMap((template) => {
      const { level: namespaceLevel, severity } = level(context, template);
      if (namespaceLevel === "privileged") return [];
      return containersOf(template)
        .filter(({ container }) => container.securityContext?.privileged === true)
        .map(({ container, path }) =>
          report(
            template.owner,
            `${path}.securityContext.privileged`,
            `container ${container.name} is privileged; the namespace's Pod Security level rejects it`,
            "drop privileged, or move the workload to a namespace labelled pod-security.kubernetes.io/enforce: privileged",
            severity,
          ),
        );
    }),
  ),
  defineRule("psa/host-access", "error", "no host network/PID/IPC, hostPath or hostPort outside privileged namespaces", (context, report) =>
    context.inventory.templates.flatMap((template) => {
      // A namespace whose level is not known here (kube-system, say) is only assumed restricted: warnings.
      const { level: namespaceLevel, severity } = level(context, template);
      if (namespaceLevel === "privileged") return [];
      const out: Finding[] = [];
      for (const key of ["hostNetwork", "hostPID", "hostIPC"] as const) {
        if (template.spec[key] === true)
          out.push(
            report(
              template.owner,
              `${template.path}.${key}`,
              `${key} is set`,
              `remove ${key}, or run this in a privileged namespace`,
              severity,
            ),
          );
      }
      (template.spec.volumes ?? []).forEach((volume, i) => {
        if (volume.hostPath)
          out.push(
            report(
              template.owner,
              `${template.path}.volumes[${i}].hostPath`,
              `volume ${volume.name} mounts host path ${volume.hostPath.path}`,
              "use a PVC or emptyDir, or move the workload to a privileged namespace (as the device plugin is)",
              severity,
            ),
          );
      });
      for (const { container, path } of containersOf(template)) {
        (container.ports ?? []).forEach((port, i) => {
          if (port.hostPort)
            out.push(
              report(
                template.owner,
                `${path}.ports[${i}].hostPort`,
                `container ${container.name} binds host port ${port.hostPort}`,
                "expose it through a Service instead",
                severity,
              ),
            );
        });
      }
      return out;
    }),
  ),
  defineRule(
    "psa/volume-types",
    "error",
    "Pod Security restricted: only configMap, secret, emptyDir, PVC, projected, downwardAPI, csi, ephemeral volumes",
    (context, report) =>
      restrictedTemplates(context).flatMap(({ template, severity }) =>
        (template.spec.volumes ?? []).flatMap((volume, i) => {
          const allowed = ["configMap", "secret", "emptyDir", "persistentVolumeClaim", "projected", "downwardAPI", "csi", "ephemeral"];
          const kinds = Object.keys(volume).filter((k) => k !== "name");
          const bad = kinds.filter((k) => !allowed.includes(k));
          return bad.length > 0 && !volume.hostPath
            ? [
                report(
                  template.owner,
                  `${template.path}.volumes[${i}]`,
                  `volume ${volume.name} is of type ${bad.join(", ")}, which restricted forbids`,
                  `use one of: ${allowed.join(", ")}`,
                  severity,
                ),
              ]
            : [];
        }),
      ),
  ),
];
