// A simulated cert-manager controller for the cluster tier, as kwok simulates nodes: no real
// cert-manager runs in the test cluster, so this marks Certificates and issuers Ready the way
// cert-manager would report them. Certificates named in `failing` get Ready=False with a reason instead.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { KubeClient } from "../../src/kube/client.ts";
import type { KubeObject } from "../../src/render/context.ts";

const run = promisify(execFile);

export interface CertManagerSimulation {
  stop(): void;
}

/**
 * `failing`: names of Certificates to mark Ready=False; `unattended`: namespaces whose objects it
 * leaves alone, as if no controller ran there (both read at each event, so tests may change them).
 */
export async function simulateCertManager(kubeconfig: string, options: { failing?: readonly string[]; unattended?: readonly string[] } = {}): Promise<CertManagerSimulation> {
  const client = new KubeClient({ kubeconfig });
  const patched = new Set<string>();
  const markReady = async (object: KubeObject, ready: boolean) => {
    const key = `${object.kind}/${object.metadata.namespace ?? ""}/${object.metadata.name}/${object.metadata.uid ?? ""}/${String(ready)}`;
    if (patched.has(key)) return;
    patched.add(key);
    const now = new Date();
    const condition = ready
      ? { type: "Ready", status: "True", reason: "Ready", message: "simulated by the test tier", lastTransitionTime: now.toISOString() }
      : { type: "Ready", status: "False", reason: "Failed", message: "The certificate request has failed to complete and will be retried: ACME challenge failed (simulated)", lastTransitionTime: now.toISOString() };
    const status: Record<string, unknown> = { conditions: [condition] };
    if (object.kind === "Certificate" && ready) status["notAfter"] = new Date(now.getTime() + 90 * 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");
    const args = ["patch", object.kind.toLowerCase(), object.metadata.name, "--subresource=status", "--type=merge", "-p", JSON.stringify({ status })];
    if (object.metadata.namespace) args.push("-n", object.metadata.namespace);
    await run("kubectl", args, { env: { ...process.env, KUBECONFIG: kubeconfig } }).catch(() => patched.delete(key));
  };
  const stops = new Map<string, () => void>();
  let stopped = false;
  const watch = (kind: string): void => {
    client
      .watch(
        "cert-manager.io/v1",
        kind,
        {},
        (type, object) => {
          if (type === "DELETED" || (options.unattended ?? []).includes(object.metadata.namespace ?? "")) return;
          const ready = (object as unknown as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions?.some((c) => c.type === "Ready");
          if (ready) return;
          void markReady(object, !(options.failing ?? []).includes(object.metadata.name));
        },
        () => {
          // Watches end (server timeouts, restarts); a controller keeps watching.
          if (!stopped) setTimeout(() => watch(kind), 500);
        },
      )
      .then((stop) => (stopped ? stop() : stops.set(kind, stop)))
      .catch(() => {
        if (!stopped) setTimeout(() => watch(kind), 500);
      });
  };
  for (const kind of ["Certificate", "ClusterIssuer", "Issuer"]) watch(kind);
  return {
    stop: () => {
      stopped = true;
      for (const stop of stops.values()) stop();
    },
  };
}
