// What the Kubernetes client says when it has no cluster to talk to: which kubeconfig and context it
// read, and how to point it elsewhere.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
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
    const file = join(mkdtempSync(join(tmpdir(), "diatonic-kubeconfig-")), "config");
    writeFileSync(
      file,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters: [{ name: nowhere, cluster: { server: 'https://127.0.0.1:1' } }]",
        "users: [{ name: u, user: { token: t } }]",
        "contexts: [{ name: far-away, context: { cluster: nowhere, user: u } }]",
        "current-context: far-away",
      ].join("\n"),
    );
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
