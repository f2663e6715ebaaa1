// A simulated ACME server for the cluster tier. The test cluster runs cert-manager's real
// controller (scripts/cluster), which issues SelfSigned and CA certificates itself; ACME issuers
// (Let's Encrypt) cannot work offline, and that controller is built to leave them alone. This
// simulation stands in for the ACME server only:
//   - an ACME (Cluster)Issuer is marked Ready, as after a successful account registration;
//   - an approved CertificateRequest for an ACME issuer is signed by a throwaway "simulated ACME"
//     CA (openssl), or failed with an ACME reason when its Certificate is named in `failing`;
//   - only on objects labelled for it (SIMULATION_OWNER_LABEL), since test files run in parallel.
// cert-manager's controller does the rest (Secret, Certificate status), so the two never write
// the same object. Status patches are retried until they land: an API server that stalls for a
// while (restarted by a test) must not leave an object without status.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { kubectlPath } from "../../scripts/cluster/build.ts";
import { KubeClient } from "../../src/kube/client.ts";
import type { KubeObject } from "../../src/render/context.ts";

const run = promisify(execFile);

export interface CertManagerSimulation {
  stop(): void;
}

interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
}

interface CertManagerObject {
  readonly kind: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly uid?: string;
    readonly labels?: Record<string, string>;
    readonly annotations?: Record<string, string>;
  };
  readonly spec?: {
    readonly acme?: unknown;
    readonly request?: string;
    readonly issuerRef?: { readonly name: string; readonly kind?: string; readonly group?: string };
  };
  readonly status?: { readonly conditions?: readonly Condition[] };
}

function isCertManagerObject(value: unknown): value is CertManagerObject {
  if (typeof value !== "object" || value === null) return false;
  const metadata = (value as { metadata?: unknown }).metadata;
  return (
    typeof (value as { kind?: unknown }).kind === "string" &&
    typeof metadata === "object" &&
    metadata !== null &&
    typeof (metadata as { name?: unknown }).name === "string"
  );
}

function condition(object: CertManagerObject, type: string): Condition | undefined {
  return object.status?.conditions?.find((c) => c.type === type);
}

/** A CA that plays the ACME server's, for this simulation only. */
function simulatedAcmeCa(): { dir: string; sign: (csrPem: string) => Promise<string> } {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-acme-sim-"));
  const key = join(dir, "ca.key");
  const cert = join(dir, "ca.crt");
  let ready: Promise<unknown> | undefined;
  let serial = 0;
  return {
    dir,
    async sign(csrPem: string): Promise<string> {
      ready ??= run("openssl", [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "2",
        "-subj",
        "/CN=diatonic simulated ACME CA",
      ]);
      await ready;
      const name = `request-${++serial}`;
      writeFileSync(join(dir, `${name}.csr`), csrPem);
      await run("openssl", [
        "x509",
        "-req",
        "-in",
        join(dir, `${name}.csr`),
        "-CA",
        cert,
        "-CAkey",
        key,
        "-CAcreateserial",
        "-days",
        "90",
        "-copy_extensions",
        "copyall",
        "-out",
        join(dir, `${name}.crt`),
      ]);
      return readFileSync(join(dir, `${name}.crt`), "utf8") + readFileSync(cert, "utf8");
    },
  };
}

/**
 * On an object, the `owner` of the one simulation that may act on it. Test files run in parallel,
 * each with its own simulation watching the whole cluster: a test that checks what one simulation
 * does (or does not) do labels its objects so that the others leave them alone.
 */
export const SIMULATION_OWNER_LABEL = "sim.diatonic.test/owner";

export interface SimulationOptions {
  /** Names of Certificates whose ACME requests fail. */
  readonly failing?: readonly string[];
  /** Acts only on objects labelled SIMULATION_OWNER_LABEL=owner; without it, only on unlabelled ones. */
  readonly owner?: string;
}

export async function simulateCertManager(kubeconfig: string, options: SimulationOptions = {}): Promise<CertManagerSimulation> {
  const client = new KubeClient({ kubeconfig });
  const ca = simulatedAcmeCa();
  let stopped = false;

  /** Patches a status until the API server takes it (or the simulation stops). */
  const patchStatus = async (object: CertManagerObject, status: Record<string, unknown>): Promise<void> => {
    const resource =
      object.kind === "CertificateRequest" ? "certificaterequests.cert-manager.io" : `${object.kind.toLowerCase()}s.cert-manager.io`;
    const args = ["patch", resource, object.metadata.name, "--subresource=status", "--type=merge", "-p", JSON.stringify({ status })];
    if (object.metadata.namespace) args.push("-n", object.metadata.namespace);
    for (let attempt = 0; !stopped; attempt++) {
      try {
        await run(kubectlPath(), ["--kubeconfig", kubeconfig, "--request-timeout=10s", ...args]);
        return;
      } catch {
        await sleep(Math.min(250 * 2 ** attempt, 4000));
      }
    }
  };

  /** Whether this simulation may act on an object: see SIMULATION_OWNER_LABEL. */
  const owned = (object: CertManagerObject): boolean => object.metadata.labels?.[SIMULATION_OWNER_LABEL] === options.owner;

  /**
   * Whether the request's issuer is an ACME one this simulation owns (a request is owned through its
   * issuer); undefined while the issuer does not exist (yet).
   */
  const isAcmeIssuer = async (
    ref: NonNullable<NonNullable<CertManagerObject["spec"]>["issuerRef"]>,
    namespace: string | undefined,
  ): Promise<boolean | undefined> => {
    if ((ref.group ?? "cert-manager.io") !== "cert-manager.io") return false;
    const kind = ref.kind ?? "Issuer";
    const issuer: unknown = await client.get({
      apiVersion: "cert-manager.io/v1",
      kind,
      metadata: { name: ref.name, ...(kind === "Issuer" && namespace ? { namespace } : {}) },
    });
    if (issuer === undefined) return undefined;
    return isCertManagerObject(issuer) && issuer.spec?.acme !== undefined && owned(issuer);
  };

  const onIssuer = async (object: CertManagerObject): Promise<void> => {
    if (object.spec?.acme === undefined || condition(object, "Ready") !== undefined) return;
    const now = new Date().toISOString();
    await patchStatus(object, {
      acme: { uri: "https://acme.invalid/acme/acct/simulated", lastRegisteredEmail: "" },
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "ACMEAccountRegistered",
          message: "The ACME account was registered with the ACME server (simulated)",
          lastTransitionTime: now,
        },
      ],
    });
  };

  const onRequest = async (object: CertManagerObject): Promise<void> => {
    const approved = condition(object, "Approved")?.status === "True";
    const ready = condition(object, "Ready");
    if (!approved || (ready !== undefined && ready.reason !== "Pending")) return;
    const ref = object.spec?.issuerRef;
    if (ref === undefined) return;
    const acme = await isAcmeIssuer(ref, object.metadata.namespace);
    if (acme === undefined) throw new Error(`issuer ${ref.name} not found yet`);
    if (!acme) return;
    const now = new Date().toISOString();
    const certificate = object.metadata.annotations?.["cert-manager.io/certificate-name"] ?? "";
    if ((options.failing ?? []).includes(certificate)) {
      await patchStatus(object, {
        failureTime: now,
        conditions: [
          { type: "Ready", status: "False", reason: "Failed", message: "ACME challenge failed (simulated)", lastTransitionTime: now },
        ],
      });
      return;
    }
    const csr = Buffer.from(object.spec?.request ?? "", "base64").toString("utf8");
    const chain = await ca.sign(csr);
    await patchStatus(object, {
      certificate: Buffer.from(chain).toString("base64"),
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "Issued",
          message: "Certificate fetched from the ACME server (simulated)",
          lastTransitionTime: now,
        },
      ],
    });
  };

  // One handler at a time per object, always on its latest version; a failed one (an issuer that
  // does not exist yet, an API server away) is tried again a second later.
  const latest = new Map<string, CertManagerObject>();
  const inFlight = new Set<string>();
  const schedule = (key: string, object: CertManagerObject, handle: (object: CertManagerObject) => Promise<void>): void => {
    latest.set(key, object);
    if (inFlight.has(key)) return;
    inFlight.add(key);
    void (async () => {
      for (let next = latest.get(key); next !== undefined && !stopped; next = latest.get(key)) {
        latest.delete(key);
        const current = next;
        await handle(current).catch(() => {
          setTimeout(() => {
            if (!stopped && !latest.has(key)) schedule(key, current, handle);
          }, 1000);
        });
      }
      inFlight.delete(key);
    })();
  };

  const stops = new Map<string, () => void>();
  const watch = (kind: string, handle: (object: CertManagerObject) => Promise<void>): void => {
    client
      .watch(
        "cert-manager.io/v1",
        kind,
        {},
        (type, object: KubeObject) => {
          if (type === "DELETED" || !isCertManagerObject(object)) return;
          if (kind !== "CertificateRequest" && !owned(object)) return;
          schedule(`${kind}/${object.metadata.namespace ?? ""}/${object.metadata.name}/${object.metadata.uid ?? ""}`, object, handle);
        },
        () => {
          // Watches end (server timeouts, restarts); a controller keeps watching.
          if (!stopped) setTimeout(() => watch(kind, handle), 500);
        },
      )
      .then((stop) => (stopped ? stop() : stops.set(kind, stop)))
      .catch(() => {
        if (!stopped) setTimeout(() => watch(kind, handle), 500);
      });
  };
  watch("ClusterIssuer", onIssuer);
  watch("Issuer", onIssuer);
  watch("CertificateRequest", onRequest);
  return {
    stop: () => {
      stopped = true;
      for (const stop of stops.values()) stop();
      rmSync(ca.dir, { recursive: true, force: true });
    },
  };
}
