// The CRDs the test cluster installs, read from cert-manager's and prometheus-operator's published
// Go modules (in the module cache), not copied into this repository.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { goModuleDir } from "./build.ts";
import { versions } from "./config.ts";

export function crdFiles(): string[] {
  const certManager = join(goModuleDir("github.com/cert-manager/cert-manager", versions.certManager), "deploy", "crds");
  const prometheus = join(
    goModuleDir("github.com/prometheus-operator/prometheus-operator", versions.prometheusOperator),
    "example",
    "prometheus-operator-crd",
  );
  return [certManager, prometheus].flatMap((dir) =>
    readdirSync(dir)
      .filter((f) => f.endsWith(".yaml"))
      .sort()
      .map((f) => join(dir, f)),
  );
}
