// What the Kubernetes client says when it has no cluster to talk to: which kubeconfig and context it
// read, and how to point it elsewhere.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, it, type TestContext } from "node:test";
import { Watch } from "@kubernetes/client-node";
import { InputError, WorldError } from "../../src/errors.ts";
import { KubeClient } from "../../src/kube/client.ts";

const NAMES = ["HOME", "KUBECONFIG", "KUBERNETES_SERVICE_HOST"] as const;
const saved = new Map(NAMES.map((name) => [name, process.env[name]]));
describe("the Kubernetes client without a cluster", () => {
  afterEach(() => {
    const env: Record<string, string | undefined> = process.env;
    for (const [name, value] of saved) {
      if (value === undefined) Reflect.deleteProperty(env, name);
      else env[name] = value;
    }
  });

  it("with no kubeconfig anywhere, says so and how to give one (the library would try http://localhost:8080)", () => {
    process.env["HOME"] = mkdtempSync(join(tmpdir(), "diatonic-home-"));
    delete process.env["KUBECONFIG"];
    delete process.env["KUBERNETES_SERVICE_HOST"];
    assert.throws(
      () => new KubeClient(),
      (error: unknown) =>
        error instanceof InputError &&
        /no kubeconfig: --kubeconfig is not given, KUBECONFIG is not set, ~\/\.kube\/config does not exist/.test(error.message) &&
        /pass --kubeconfig FILE or set KUBECONFIG/.test(error.fix ?? ""),
    );
  });

  it("an unreachable server: the error names the server, the context and the kubeconfig it came from", async () => {
    const file = kubeconfig("https://127.0.0.1:1");
    const client = new KubeClient({ kubeconfig: file });
    await assert.rejects(
      () => client.version(),
      (error: unknown) =>
        error instanceof WorldError &&
        error.message.startsWith(`cannot reach the cluster at https://127.0.0.1:1 (context far-away of ${file}):`) &&
        /--kubeconfig, --context/.test(error.fix ?? ""),
    );
  });
});

/** A kubeconfig file whose context far-away points at `server`. */
function kubeconfig(server: string): string {
  const file = join(mkdtempSync(join(tmpdir(), "diatonic-kubeconfig-")), "config");
  writeFileSync(
    file,
    [
      "apiVersion: v1",
      "kind: Config",
      `clusters: [{ name: nowhere, cluster: { server: '${server}', insecure-skip-tls-verify: true } }]`,
      "users: [{ name: u, user: { token: t } }]",
      "contexts: [{ name: far-away, context: { cluster: nowhere, user: u } }]",
      "current-context: far-away",
    ].join("\n"),
  );
  return file;
}

async function listening(t: TestContext, server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  return (server.address() as AddressInfo).port;
}

describe("the Kubernetes client against a server that does not answer", () => {
  it(
    "gives up a connection that is not established in time, naming the server (the OS waited about 2 minutes)",
    { timeout: 30_000 },
    async (t) => {
      // Accepts the TCP connection and never says a word: the TLS handshake never ends, as with a
      // wedged API server (a host that drops packets cannot be made here without root's firewall).
      const silent: Socket[] = [];
      const port = await listening(
        t,
        createServer((socket) => silent.push(socket)),
      );
      t.after(() => silent.forEach((socket) => socket.destroy()));
      const client = new KubeClient({ kubeconfig: kubeconfig(`https://127.0.0.1:${port}`), connectTimeoutMs: 300 });
      const unreachable = (error: unknown) =>
        error instanceof WorldError &&
        error.message.includes(`no connection to https://127.0.0.1:${port} within 0.3s (the host does not answer)`) &&
        error.message.startsWith(`cannot reach the cluster at https://127.0.0.1:${port} (context far-away`);
      await assert.rejects(() => client.version(), unreachable);
      await assert.rejects(() => client.list("v1", "ConfigMap", "default"), unreachable);
      // Watches connect through another of the library's paths.
      const ended = await new Promise<unknown>((resolve, reject) => {
        new Watch(client.config).watch("/api/v1/configmaps", {}, () => undefined, resolve).catch(reject);
      }).catch((error: unknown) => error);
      assert.match(String(ended), new RegExp(`no connection to https://127\\.0\\.0\\.1:${port} within 0\\.3s`));
    },
  );

  it("bounds only the connection: an answer that takes longer than the bound once connected still arrives", async (t) => {
    const port = await listening(
      t,
      createHttpServer((_request, response) => {
        setTimeout(() => {
          response.setHeader("content-type", "application/json");
          response.end(JSON.stringify({ major: "1", minor: "33", gitVersion: "v1.33.0" }));
        }, 600);
      }),
    );
    const client = new KubeClient({ kubeconfig: kubeconfig(`http://127.0.0.1:${port}`), connectTimeoutMs: 300 });
    assert.equal((await client.version()).gitVersion, "v1.33.0");
  });
});
