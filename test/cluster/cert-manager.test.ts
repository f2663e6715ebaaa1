// The cluster's own smoke check of cert-manager: its real controller (tools/addons) issues the
// self-signed → CA ClusterIssuer → leaf chain that the platform renders, and beside it the test
// tier's ACME simulation issues (or fails) ACME certificates without the two writing the same object.
import assert from "node:assert/strict";
import { randomBytes, X509Certificate, createPrivateKey, createPublicKey } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parse, stringify } from "yaml";
import { SIMULATION_OWNER_LABEL, simulateCertManager } from "../support/cert-manager-sim.ts";
import { list } from "../support/cluster-manifests.ts";
import { clusterSkipReason, testCluster, type TestCluster } from "../support/cluster.ts";

const skip = clusterSkipReason();
const clusterResourceNamespace = "cert-manager";

interface Certificate {
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

function decode(secret: { data?: Record<string, string> }, key: string): string {
  const value = secret.data?.[key];
  assert.ok(value !== undefined, `the Secret holds ${key} (it has: ${Object.keys(secret.data ?? {}).join(", ")})`);
  return Buffer.from(value, "base64").toString("utf8");
}

/**
 * A TCP proxy to the API server whose port can close for a while, as a restarting API server's
 * does (new connections are refused); connections already open, such as watches, keep flowing.
 */
async function interruptibleProxy(
  target: URL,
): Promise<{ port: number; interrupt: () => void; resume: () => Promise<void>; close: () => void }> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on("error", () => undefined);
      socket.on("close", () => open.delete(socket));
    }
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  const listen = (port: number): Promise<void> => new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  await listen(0);
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    port,
    // Stops listening at once; the open connections stay.
    interrupt: () => server.close(),
    resume: () => listen(port),
    close: () => {
      server.close();
      for (const socket of open) socket.destroy();
    },
  };
}

describe("cluster tier: cert-manager", { skip }, () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await testCluster();
  });

  /** ClusterIssuers are cluster-wide: unique names, removed after the test. */
  async function clusterObjects(t: TestContext, objects: Record<string, unknown>[]): Promise<void> {
    await cluster.kubectl(["apply", "-f", "-"], list(objects));
    t.after(async () => {
      await cluster.kubectl(["delete", "-f", "-", "--ignore-not-found", "--wait=false"], list(objects));
    });
  }

  it("issues the self-signed → CA ClusterIssuer → leaf chain the platform renders", { timeout: 90_000 }, async (t) => {
    const ns = await cluster.namespace(t);
    const id = randomBytes(3).toString("hex");
    const issuerRef = (name: string) => ({ group: "cert-manager.io", kind: "ClusterIssuer", name });
    await clusterObjects(t, [
      { apiVersion: "cert-manager.io/v1", kind: "ClusterIssuer", metadata: { name: `selfsigned-${id}` }, spec: { selfSigned: {} } },
      {
        apiVersion: "cert-manager.io/v1",
        kind: "Certificate",
        metadata: { name: `ca-${id}`, namespace: clusterResourceNamespace },
        spec: {
          isCA: true,
          commonName: `diatonic test CA ${id}`,
          secretName: `ca-${id}`,
          privateKey: { algorithm: "ECDSA", size: 256 },
          issuerRef: issuerRef(`selfsigned-${id}`),
        },
      },
      { apiVersion: "cert-manager.io/v1", kind: "ClusterIssuer", metadata: { name: `ca-${id}` }, spec: { ca: { secretName: `ca-${id}` } } },
    ]);
    await cluster.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "cert-manager.io/v1",
        kind: "Certificate",
        metadata: { name: "gateway-tls", namespace: ns },
        spec: {
          secretName: "gateway-tls",
          dnsNames: ["llm.localtest.me"],
          privateKey: { algorithm: "ECDSA", size: 256 },
          issuerRef: issuerRef(`ca-${id}`),
        },
      }),
    );
    t.after(() => cluster.kubectl(["-n", clusterResourceNamespace, "delete", "secret", `ca-${id}`, "--ignore-not-found"]));
    await cluster.kubectl(["-n", ns, "wait", "--for=condition=Ready", "certificate/gateway-tls", "--timeout=60s"]);

    const secret = await cluster.kubectlJson<{ type: string; data?: Record<string, string> }>(["-n", ns, "get", "secret", "gateway-tls"]);
    assert.equal(secret.type, "kubernetes.io/tls");
    const leaf = new X509Certificate(decode(secret, "tls.crt"));
    const ca = new X509Certificate(decode(secret, "ca.crt"));
    assert.match(leaf.subjectAltName ?? "", /DNS:llm\.localtest\.me/);
    assert.equal(ca.subject, `CN=diatonic test CA ${id}`);
    assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), "the leaf is signed by the CA of the chain");
    assert.ok(ca.verify(ca.publicKey), "the CA is self-signed");
    const key = createPublicKey(createPrivateKey(decode(secret, "tls.key")));
    assert.ok(key.equals(leaf.publicKey), "tls.key is the leaf's key");
  });

  it(
    "issues an ACME certificate through the simulated ACME server, and fails one named as failing, beside the real controller",
    { timeout: 90_000 },
    async (t) => {
      const ns = await cluster.namespace(t);
      const id = randomBytes(3).toString("hex");
      const simulation = await simulateCertManager(cluster.kubeconfig, { failing: ["acme-failing"], owner: id });
      t.after(() => simulation.stop());
      await clusterObjects(t, [
        {
          apiVersion: "cert-manager.io/v1",
          kind: "ClusterIssuer",
          metadata: { name: `letsencrypt-${id}`, labels: { [SIMULATION_OWNER_LABEL]: id } },
          spec: {
            acme: {
              server: "https://acme-staging-v02.api.letsencrypt.org/directory",
              email: "ops@example.com",
              privateKeySecretRef: { name: `letsencrypt-${id}-account` },
              solvers: [{ http01: { ingress: { class: "nginx" } } }],
            },
          },
        },
      ]);
      const certificate = (name: string) => ({
        apiVersion: "cert-manager.io/v1",
        kind: "Certificate",
        metadata: { name, namespace: ns },
        spec: {
          secretName: name,
          dnsNames: [`${name}.example.com`],
          issuerRef: { group: "cert-manager.io", kind: "ClusterIssuer", name: `letsencrypt-${id}` },
        },
      });
      await cluster.kubectl(["apply", "-f", "-"], list([certificate("acme-ok"), certificate("acme-failing")]));
      await cluster.kubectl(["wait", "--for=condition=Ready", `clusterissuer/letsencrypt-${id}`, "--timeout=30s"]);
      await cluster.kubectl(["-n", ns, "wait", "--for=condition=Ready", "certificate/acme-ok", "--timeout=60s"]);
      const secret = await cluster.kubectlJson<{ data?: Record<string, string> }>(["-n", ns, "get", "secret", "acme-ok"]);
      const issued = new X509Certificate(decode(secret, "tls.crt"));
      assert.equal(issued.issuer, "CN=diatonic simulated ACME CA");
      assert.match(issued.subjectAltName ?? "", /DNS:acme-ok\.example\.com/);

      await cluster.kubectl(["-n", ns, "wait", "--for=condition=Issuing=False", "certificate/acme-failing", "--timeout=60s"]);
      const failing = await cluster.kubectlJson<Certificate>(["-n", ns, "get", "certificate", "acme-failing"]);
      const issuing = failing.status?.conditions?.find((c) => c.type === "Issuing");
      assert.equal(issuing?.reason, "Failed");
      assert.match(issuing?.message ?? "", /ACME challenge failed \(simulated\)/);
      assert.equal(failing.status?.conditions?.find((c) => c.type === "Ready")?.status, "False");
    },
  );

  it("the ACME simulation retries a status patch until an API server that was away for 15 s takes it", { timeout: 90_000 }, async (t) => {
    const config = parse(readFileSync(cluster.kubeconfig, "utf8")) as { clusters: { cluster: { server: string } }[] };
    const entry = config.clusters[0];
    assert.ok(entry);
    const proxy = await interruptibleProxy(new URL(entry.cluster.server));
    const dir = mkdtempSync(join(tmpdir(), "diatonic-away-"));
    t.after(() => {
      proxy.close();
      rmSync(dir, { recursive: true, force: true });
    });
    entry.cluster.server = `https://127.0.0.1:${proxy.port}`;
    const kubeconfig = join(dir, "kubeconfig");
    writeFileSync(kubeconfig, stringify(config), { mode: 0o600 });
    const name = `away-${randomBytes(3).toString("hex")}`;
    // The other test files' simulations (one per process) leave this issuer to this one.
    const simulation = await simulateCertManager(kubeconfig, { owner: name });
    t.after(() => simulation.stop());
    // Its watches are open before the API server goes away; its status patches (new connections) are not.
    await sleep(2000);
    proxy.interrupt();
    await clusterObjects(t, [
      {
        apiVersion: "cert-manager.io/v1",
        kind: "ClusterIssuer",
        metadata: { name, labels: { [SIMULATION_OWNER_LABEL]: name } },
        spec: {
          acme: {
            server: "https://acme-staging-v02.api.letsencrypt.org/directory",
            privateKeySecretRef: { name },
            solvers: [{ http01: { ingress: { class: "nginx" } } }],
          },
        },
      },
    ]);
    await sleep(15_000);
    const during = (await cluster.kubectl(["get", "clusterissuer", name, "-o", "jsonpath={.status.conditions}"])).trim();
    assert.equal(during, "", "no status while the simulation's API server is away");
    await proxy.resume();
    await cluster.kubectl(["wait", "--for=condition=Ready", `clusterissuer/${name}`, "--timeout=30s"]);
  });
});
