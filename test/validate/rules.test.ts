import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { KubeObject } from "../../src/render/context.ts";
import { environmentFromSpec } from "../../src/validate/from-spec.ts";
import { rules, validateObjects } from "../../src/validate/index.ts";
import type { ValidationEnvironment } from "../../src/validate/types.ts";

type Json = Record<string, unknown>;
const clean = environmentFromSpec("examples/lab/platform.yaml", "production");

/** The lab with a spec-level warning (its model on the moving branch 'main'). */
function specWithWarning(): string {
  const file = join(mkdtempSync(join(tmpdir(), "rules-spec-")), "platform.yaml");
  writeFileSync(file, readFileSync("examples/lab/platform.yaml", "utf8").replace(/revision: 2d2a2ab4\w+/, "revision: main"));
  return file;
}

function fresh(): Json[] {
  return structuredClone(clean.objects) as unknown as Json[];
}
function get(objects: Json[], kind: string, name: string): Json {
  const found = objects.find((o) => o["kind"] === kind && (o["metadata"] as Json)["name"] === name);
  assert.ok(found, `${kind}/${name} exists`);
  return found;
}
/** Walks a dotted path (numbers index arrays) and returns the parent and last key. */
function at(object: Json, path: string): [Json, string] {
  const parts = path.split(".");
  const last = parts.pop() ?? "";
  let node: unknown = object;
  for (const part of parts) node = (node as Json)[part];
  return [node as Json, last];
}
function set(object: Json, path: string, value: unknown): void {
  const [parent, key] = at(object, path);
  parent[key] = value;
}
function drop(object: Json, path: string): void {
  const [parent, key] = at(object, path);
  Reflect.deleteProperty(parent, key);
}
const gateway = (o: Json[]) => get(o, "Deployment", "gateway");
const engine = (o: Json[]) => get(o, "Deployment", "engine");
const GW = "spec.template.spec.containers.0";
const EN = "spec.template.spec.containers.0";

interface Case {
  readonly rule: string;
  /** Breaks the objects in place. */
  readonly mutate: (objects: Json[]) => void;
  readonly env?: (env: ValidationEnvironment) => ValidationEnvironment;
}

const cases: Case[] = [
  {
    rule: "spec/cross-field",
    mutate: () => undefined,
    env: (env) => ({ ...env, specWarnings: environmentFromSpec(specWithWarning(), "production").env.specWarnings ?? [] }),
  },
  { rule: "schema/kubernetes", mutate: (o) => set(gateway(o), `${GW}.ports.0.containerPort`, "http") },
  {
    rule: "schema/metadata",
    mutate: (o) => set(get(o, "ConfigMap", "gateway"), "metadata.labels.app\u0000kubernetes\u0000io/name", "x".repeat(70)),
  },
  {
    rule: "psa/run-as-non-root",
    mutate: (o) => {
      drop(gateway(o), "spec.template.spec.securityContext.runAsNonRoot");
      drop(gateway(o), `${GW}.securityContext.runAsNonRoot`);
    },
  },
  { rule: "psa/root-user", mutate: (o) => set(gateway(o), `${GW}.securityContext.runAsUser`, 0) },
  { rule: "psa/privilege-escalation", mutate: (o) => set(gateway(o), `${GW}.securityContext.allowPrivilegeEscalation`, true) },
  { rule: "psa/capabilities", mutate: (o) => set(gateway(o), `${GW}.securityContext.capabilities`, { drop: ["ALL"], add: ["SYS_ADMIN"] }) },
  {
    rule: "psa/seccomp",
    mutate: (o) => {
      drop(gateway(o), "spec.template.spec.securityContext.seccompProfile");
      drop(gateway(o), `${GW}.securityContext.seccompProfile`);
    },
  },
  { rule: "psa/privileged", mutate: (o) => set(gateway(o), `${GW}.securityContext.privileged`, true) },
  { rule: "psa/host-access", mutate: (o) => set(gateway(o), "spec.template.spec.hostNetwork", true) },
  {
    rule: "psa/volume-types",
    mutate: (o) => {
      (get(o, "Deployment", "gateway")["spec"] as { template: { spec: { volumes: Json[] } } }).template.spec.volumes.push({
        name: "nfs",
        nfs: { server: "10.0.0.1", path: "/x" },
      });
    },
  },
  { rule: "security/read-only-root", mutate: (o) => set(gateway(o), `${GW}.securityContext.readOnlyRootFilesystem`, false) },
  {
    rule: "security/writable-paths",
    mutate: (o) => set(gateway(o), `${GW}.volumeMounts`, [{ name: "config", mountPath: "/etc/diatonic/gateway", readOnly: true }]),
  },
  {
    // An application's Role that reads every Secret in its namespace, instead of the one it needs.
    rule: "rbac/read-all-secrets",
    mutate: (o) => {
      o.push({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: { name: "gateway-secrets", namespace: "llama3-multi-adapter" },
        rules: [{ apiGroups: [""], resources: ["configmaps", "secrets"], verbs: ["get", "list"] }],
      });
    },
  },
  { rule: "workload/resources", mutate: (o) => drop(gateway(o), `${GW}.resources.limits.memory`) },
  { rule: "workload/image-pinned", mutate: (o) => set(gateway(o), `${GW}.image`, "ghcr.io/diatonic-ai/gateway:latest") },
  { rule: "workload/probes", mutate: (o) => drop(gateway(o), `${GW}.readinessProbe`) },
  { rule: "workload/probe-port", mutate: (o) => set(gateway(o), `${GW}.livenessProbe.httpGet.port`, "metrics") },
  {
    rule: "workload/selector-labels",
    mutate: (o) => set(gateway(o), "spec.selector.matchLabels", { "app.kubernetes.io/name": "gateway-v2" }),
  },
  { rule: "workload/model-load-startup", mutate: (o) => drop(engine(o), `${EN}.startupProbe`) },
  { rule: "wiring/service-selector", mutate: (o) => set(get(o, "Service", "qdrant"), "spec.selector", { app: "qdrant" }) },
  { rule: "wiring/service-target-port", mutate: (o) => set(get(o, "Service", "engine"), "spec.ports.0.targetPort", 9000) },
  {
    rule: "wiring/ingress-backend",
    mutate: (o) => set(get(o, "Ingress", "gateway"), "spec.rules.0.http.paths.0.backend.service.name", "llama-proxy"),
  },
  {
    rule: "wiring/httpproxy-backend",
    mutate: (o) => {
      o.push({
        apiVersion: "projectcontour.io/v1",
        kind: "HTTPProxy",
        metadata: { name: "edge", namespace: "llama3-multi-adapter" },
        spec: { virtualhost: { fqdn: "x.example.com" }, routes: [{ services: [{ name: "gateway", port: 9999 }] }] },
      });
    },
  },
  { rule: "wiring/tls-certificate", mutate: (o) => set(get(o, "Certificate", "gateway-tls"), "spec.dnsNames", ["other.example.com"]) },
  { rule: "wiring/issuer-ref", mutate: (o) => set(get(o, "Certificate", "gateway-tls"), "spec.issuerRef.name", "letsencrypt") },
  { rule: "wiring/service-account", mutate: (o) => set(gateway(o), "spec.template.spec.serviceAccountName", "llm-proxy") },
  { rule: "wiring/configmap-ref", mutate: (o) => set(gateway(o), "spec.template.spec.volumes.0.configMap.name", "gateway-config") },
  {
    rule: "wiring/secret-ref",
    mutate: (o) => {
      (
        get(o, "Deployment", "gateway")["spec"] as { template: { spec: { containers: { env: Json[] }[] } } }
      ).template.spec.containers[0]?.env.push({ name: "OPENAI_KEY", valueFrom: { secretKeyRef: { name: "openai", key: "key" } } });
    },
  },
  {
    rule: "wiring/pvc-ref",
    mutate: (o) =>
      (get(o, "Deployment", "embeddings")["spec"] as { template: { spec: { volumes: Json[] } } }).template.spec.volumes.push({
        name: "models",
        persistentVolumeClaim: { claimName: "model-store" },
      }),
  },
  {
    rule: "storage/storage-class",
    mutate: (o) => set(get(o, "StatefulSet", "qdrant"), "spec.volumeClaimTemplates.0.spec.storageClassName", "nfs-client"),
  },
  {
    // The seed's mistake: one ReadWriteOnce model volume mounted by every replica.
    rule: "storage/rwo-shared",
    mutate: (o) => {
      o.push({
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        metadata: { name: "shared-models", namespace: "llama3-multi-adapter" },
        spec: { accessModes: ["ReadWriteOnce"], storageClassName: "longhorn", resources: { requests: { storage: "20Gi" } } },
      });
      (gateway(o)["spec"] as { template: { spec: { volumes: Json[] } } }).template.spec.volumes.push({
        name: "models",
        persistentVolumeClaim: { claimName: "shared-models" },
      });
    },
  },
  {
    rule: "storage/retain-data",
    mutate: (o) => set(get(o, "StatefulSet", "qdrant"), "spec.persistentVolumeClaimRetentionPolicy.whenDeleted", "Delete"),
  },
  { rule: "scaling/hpa-target", mutate: (o) => set(get(o, "HorizontalPodAutoscaler", "gateway"), "spec.scaleTargetRef.name", "proxy") },
  {
    rule: "scaling/pdb",
    mutate: (o) => {
      const pdb = get(o, "PodDisruptionBudget", "gateway");
      drop(pdb, "spec.maxUnavailable");
      set(pdb, "spec.minAvailable", 3);
    },
  },
  {
    rule: "network/default-deny",
    mutate: (o) => {
      o.splice(
        o.findIndex((x) => (x["metadata"] as Json)["name"] === "default-deny"),
        1,
      );
    },
  },
  {
    rule: "network/selects-nothing",
    mutate: (o) => set(get(o, "NetworkPolicy", "engine-ingress"), "spec.podSelector.matchLabels", { app: "vllm" }),
  },
  { rule: "network/required-flows", mutate: (o) => set(get(o, "NetworkPolicy", "gateway-ingress"), "spec.ingress.0.ports.0.port", 80) },
  {
    rule: "gpu/device-plugin-config",
    mutate: (o) =>
      set(get(o, "ConfigMap", "nvidia-device-plugin-config"), "data.config\u0000yaml", "version: v1\ntimeSlicing:\n  replicas: 4\n"),
  },
  { rule: "gpu/capacity", mutate: (o) => set(engine(o), "spec.replicas", 9) },
  { rule: "gpu/fail-requests-greater-than-one", mutate: (o) => set(engine(o), `${EN}.resources.limits.nvidia\u0000com/gpu`, "2") },
  {
    rule: "gpu/memory-utilization-sum",
    mutate: (o) => {
      set(engine(o), "spec.replicas", 5);
    },
  },
  {
    rule: "gpu/vram",
    mutate: (o) => {
      const args =
        (engine(o)["spec"] as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0]?.args ?? [];
      args[args.indexOf("--max-model-len") + 1] = "131072";
    },
  },
  {
    rule: "gpu/tensor-parallel",
    mutate: (o) => {
      const args =
        (engine(o)["spec"] as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0]?.args ?? [];
      args[args.indexOf("--tensor-parallel-size") + 1] = "2";
    },
  },
  {
    rule: "gpu/cuda-visible-devices",
    mutate: (o) =>
      (engine(o)["spec"] as { template: { spec: { containers: { env: Json[] }[] } } }).template.spec.containers[0]?.env.push({
        name: "CUDA_VISIBLE_DEVICES",
        value: "0",
      }),
  },
  // From the manifests alone (no spec, so no GPU inventory): two engine replicas at 0.85 can share one of the time-sliced GPUs.
  { rule: "gpu/time-sliced-memory-sum", mutate: (o) => set(engine(o), "spec.replicas", 2), env: () => ({}) },
  {
    rule: "gpu/rollout-surge",
    mutate: (o) => {
      set(engine(o), "spec.replicas", 8);
      set(engine(o), "spec.strategy", { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    },
  },
];

/** Paths above use "\u0000" where a key itself contains a dot. */
function fixKeys(objects: Json[]): void {
  const walk = (node: unknown) => {
    if (typeof node !== "object" || node === null) return;
    for (const key of Object.keys(node)) {
      const value = (node as Json)[key];
      if (key.includes("\u0000")) {
        (node as Json)[key.split("\u0000").join(".")] = value;
        Reflect.deleteProperty(node, key);
      }
      walk(value);
    }
  };
  walk(objects);
}

describe("validate rules", () => {
  it("the lab example validates without errors in every environment", () => {
    for (const env of ["local", "staging", "production"]) {
      const { objects, env: context } = environmentFromSpec("examples/lab/platform.yaml", env);
      const result = validateObjects(objects, context);
      assert.equal(
        result.errors,
        0,
        `${env}: ${JSON.stringify(
          result.findings.filter((f) => f.severity === "error"),
          null,
          2,
        )}`,
      );
    }
  });

  it("a platform named nvidia-…: its Grafana dashboard's ConfigMap (named after it) is not taken for a device-plugin config", () => {
    const file = join(mkdtempSync(join(tmpdir(), "rules-nvidia-")), "platform.yaml");
    writeFileSync(file, readFileSync("examples/lab/platform.yaml", "utf8").replace(/^ {2}name: lab$/m, "  name: nvidia-lab"));
    const { objects, env } = environmentFromSpec(file, "production");
    assert.ok(
      objects.some((o) => o.kind === "ConfigMap" && o.metadata.name.includes("nvidia-lab") && o.metadata.name.endsWith("dashboard")),
      "the dashboard's ConfigMap carries the name",
    );
    const result = validateObjects(objects, env);
    assert.deepEqual(
      result.findings.filter((f) => f.ruleId === "gpu/device-plugin-config"),
      [],
    );
    assert.equal(result.errors, 0);
  });

  it("rbac/read-all-secrets leaves alone a Role that names its Secrets, or only writes them", () => {
    const objects = fresh();
    objects.push({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "named" },
      rules: [
        { apiGroups: [""], resources: ["secrets"], resourceNames: ["gateway-api-keys"], verbs: ["get", "watch"] },
        { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
      ],
    });
    objects.push({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "everything" },
      rules: [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }],
    });
    const hits = validateObjects(objects as unknown as KubeObject[], clean.env).findings.filter(
      (f) => f.ruleId === "rbac/read-all-secrets",
    );
    assert.deepEqual(
      hits.map((f) => `${f.resource} ${f.path}`),
      ["ClusterRole/everything rules[0]"],
    );
  });

  it("gpu/time-sliced-memory-sum: pods that cannot share a GPU, or that fit one together, pass", () => {
    const hits = (mutate: (o: Json[]) => void) => {
      const objects = fresh();
      mutate(objects);
      return validateObjects(objects as unknown as KubeObject[]).findings.filter((f) => f.ruleId === "gpu/time-sliced-memory-sum");
    };
    const args = (o: Json[]) =>
      (engine(o)["spec"] as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0]?.args ?? [];
    assert.equal(hits((o) => set(engine(o), "spec.replicas", 2)).length, 1, "two replicas at 0.85 on one time-sliced GPU");
    assert.match(
      hits((o) => set(engine(o), "spec.replicas", 2))[0]?.message ?? "",
      /Deployment\/llama3-multi-adapter\/engine #1 \(0\.85\), Deployment\/llama3-multi-adapter\/engine #2 \(0\.85\) can land on one GPU, whose 4 time-slices \(nvidia-device-plugin\/nvidia-device-plugin-config\) share its memory: their --gpu-memory-utilization add up to 1\.70 > 1/,
    );
    assert.deepEqual(
      hits((o) => {
        set(engine(o), "spec.replicas", 2);
        const a = args(o);
        a[a.indexOf("--gpu-memory-utilization") + 1] = "0.45";
      }),
      [],
      "0.45 + 0.45 fits one GPU",
    );
    assert.deepEqual(
      hits((o) => {
        set(engine(o), "spec.replicas", 2);
        set(engine(o), "spec.template.spec.affinity", {
          podAntiAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: "kubernetes.io/hostname", labelSelector: {} }],
          },
        });
      }),
      [],
      "never on one node",
    );
    assert.deepEqual(
      hits((o) => set(engine(o), "spec.replicas", 1)),
      [],
      "one pod alone",
    );
  });

  it(`has at least 25 rules, each with a case below (${rules.length})`, () => {
    assert.ok(rules.length >= 25);
    assert.deepEqual(
      rules.map((r) => r.id).filter((id) => !cases.some((c) => c.rule === id)),
      [],
    );
  });

  for (const c of cases) {
    it(`${c.rule} catches its mistake`, () => {
      const objects = fresh();
      c.mutate(objects);
      fixKeys(objects);
      const result = validateObjects(objects as unknown as KubeObject[], c.env ? c.env(clean.env) : clean.env);
      const hits = result.findings.filter((f) => f.ruleId === c.rule && f.severity !== "info");
      assert.ok(
        hits.length > 0,
        `expected a ${c.rule} finding; got ${JSON.stringify(
          result.findings.map((f) => `${f.ruleId}: ${f.message}`),
          null,
          1,
        )}`,
      );
      for (const hit of hits) {
        assert.ok(
          hit.resource.length > 0 && hit.path.length > 0 && hit.message.length > 0 && hit.fix.length > 0,
          "finding names resource, path, message and fix",
        );
      }
    });
  }
});
