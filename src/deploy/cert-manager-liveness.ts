// Whether a cert-manager controller acts on the platform's Certificates and issuers, so that the
// certificates phase says "no cert-manager runs" within seconds instead of waiting out its timeout.
//
// The signal has two parts, both needed before the phase is failed:
// 1. behaviour: a Certificate or issuer has no status at all after a short grace. A running
//    cert-manager writes a condition within a second or two of seeing one (Ready=False
//    "DoesNotExist", Issuing=True, or an issuer's Ready), whatever its install looks like;
// 2. liveness: no cert-manager leader holds its lease. The controller elects a leader through the
//    Lease `cert-manager-controller` (in kube-system by default, or the namespace its
//    --leader-election-namespace names) and renews it every 15 s; leaseDurationSeconds (60) after
//    the last renewal, no controller is leading. A live lease means a slow controller: keep waiting.
// Labels and pod names are not used: installs rename them (preflight's label check is a hint only).
import { ForbiddenError, resourceName, type KubeClient } from "../kube/client.ts";
import type { UnattendedCheck } from "../kube/wait.ts";
import type { KubeObject } from "../render/context.ts";

export const CERT_MANAGER_LEASE = "cert-manager-controller";
export const CERT_MANAGER_KINDS = ["Certificate", "ClusterIssuer", "Issuer"] as const;
const INSTALL =
  "install cert-manager's controller (helm install cert-manager jetstack/cert-manager --namespace cert-manager --create-namespace --set crds.enabled=true), then run apply again: it resumes where it stopped";
/** Clocks of the controller's node and of this machine may differ by this much. */
const SKEW_MS = 10_000;

interface LeaseLike extends KubeObject {
  readonly spec?: { readonly holderIdentity?: string; readonly renewTime?: string; readonly leaseDurationSeconds?: number };
}

/** cert-manager's leader leases, wherever they are; undefined when these credentials may not read Leases. */
async function leases(client: KubeClient): Promise<LeaseLike[] | undefined> {
  try {
    return await client.list<LeaseLike>("coordination.k8s.io/v1", "Lease", undefined, undefined, `metadata.name=${CERT_MANAGER_LEASE}`);
  } catch (error) {
    if (!(error instanceof ForbiddenError)) throw error;
  }
  try {
    const own = await client.get<LeaseLike>({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: CERT_MANAGER_LEASE, namespace: "kube-system" },
    });
    return own === undefined ? [] : [own];
  } catch (error) {
    if (error instanceof ForbiddenError) return undefined;
    throw error;
  }
}

/** How long ago each lease was renewed, and whether a leader still holds it. */
export function leaseState(lease: LeaseLike, now: number): { readonly held: boolean; readonly ago: number | undefined } {
  const renewed = lease.spec?.renewTime === undefined ? undefined : Date.parse(lease.spec.renewTime);
  if (renewed === undefined || Number.isNaN(renewed)) return { held: false, ago: undefined };
  const ago = now - renewed;
  return { held: (lease.spec?.holderIdentity ?? "") !== "" && ago <= (lease.spec?.leaseDurationSeconds ?? 60) * 1000 + SKEW_MS, ago };
}

/**
 * The certificates phase's early check: undefined while a cert-manager leader renews its lease (or
 * nobody can tell), otherwise what is wrong and the fix.
 */
export function certManagerCheck(client: KubeClient, graceMs: number): UnattendedCheck {
  return {
    kinds: CERT_MANAGER_KINDS,
    graceMs,
    async verdict(unattended) {
      const found = await leases(client);
      if (found === undefined) return undefined;
      const now = Date.now();
      if (found.some((lease) => leaseState(lease, now).held)) return undefined;
      const names = unattended.map(resourceName);
      const lease =
        found.length === 0
          ? `no cert-manager leader lease (Lease ${CERT_MANAGER_LEASE}) exists in any namespace`
          : found
              .map((l) => {
                const { ago } = leaseState(l, now);
                return `its leader lease ${l.metadata.namespace ?? ""}/${l.metadata.name} was last renewed ${ago === undefined ? "never" : `${Math.round(ago / 1000)} s ago`} (a running controller renews it every 15 s)`;
              })
              .join("; ");
      return {
        message: `no cert-manager controller is running: after ${Math.round(graceMs / 1000)} s cert-manager has written no status on ${names.length === 1 ? names[0] : `any of the ${names.length} cert-manager objects of this phase`}, and ${lease}`,
        fix: INSTALL,
      };
    },
  };
}
