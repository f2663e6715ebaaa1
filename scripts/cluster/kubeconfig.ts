// Kubeconfig files: one per component (certificate paths) and the admin one handed to users and
// tests (certificates inline, so it stays valid wherever it is copied).
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";

export interface KubeconfigOptions {
  readonly server: string;
  readonly pkiDir: string;
  /** File stem of the client certificate in pkiDir (`admin`, `scheduler`, …). */
  readonly client: string;
  /** Embed the certificates instead of pointing at them. @default false */
  readonly inline?: boolean;
}

export const contextName = "diatonic-test";

export function kubeconfigYaml(options: KubeconfigOptions): string {
  const file = (name: string): string => join(options.pkiDir, name);
  const data = (name: string): string => readFileSync(file(name)).toString("base64");
  const cluster = options.inline
    ? { server: options.server, "certificate-authority-data": data("ca.crt") }
    : { server: options.server, "certificate-authority": file("ca.crt") };
  const user = options.inline
    ? {
        "client-certificate-data": data(`${options.client}.crt`),
        "client-key-data": data(`${options.client}.key`),
      }
    : { "client-certificate": file(`${options.client}.crt`), "client-key": file(`${options.client}.key`) };
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: contextName, cluster }],
    users: [{ name: options.client, user }],
    contexts: [{ name: contextName, context: { cluster: contextName, user: options.client } }],
    "current-context": contextName,
  });
}

export function writeFileAtomic(path: string, text: string, mode = 0o600): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}
