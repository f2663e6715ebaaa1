// npm run bench:deploy — wall time from an empty namespace to Ready for the lab example (local
// environment), `diatonic apply` vs the way the old deploy script did it (kubectl apply per folder,
// fixed sleeps, then kubectl wait), side by side on the test cluster. Table + bench/results/deploy.json.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { buildEnvironment } from "../src/render/build.ts";
import { kwokPlacementLabel } from "../scripts/cluster/admission.ts";
import { kubectlPath } from "../scripts/cluster/build.ts";
import { toYamlStream } from "../src/write/yaml.ts";
import { simulateCertManager } from "../test/support/cert-manager-sim.ts";
import { runCli } from "../test/support/cli.ts";
import { testCluster } from "../test/support/cluster.ts";

const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 3);
/** What the old script slept after each folder ("give it time to come up"). */
const OLD_SLEEP_SECONDS = 10;

const cluster = await testCluster();
const kubectl = (args: string[], input?: string) =>
  execFileSync(kubectlPath(), ["--kubeconfig", cluster.kubeconfig, ...args], { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"] });
// The run leaves the cluster as it found it: `monitoring` stays if it was there, goes if the run made it.
const monitoring = await cluster.borrowNamespace("monitoring");
const simulation = await simulateCertManager(cluster.kubeconfig);

function prepare(): { file: string; namespace: string } {
  const namespace = `bench-${randomBytes(3).toString("hex")}`;
  const doc = parseDocument(readFileSync("examples/lab/platform.yaml", "utf8"));
  doc.setIn(["metadata", "name"], namespace);
  doc.setIn(["spec", "namespace"], namespace);
  const file = join(mkdtempSync(join(tmpdir(), "bench-deploy-")), "platform.yaml");
  writeFileSync(file, doc.toString());
  kubectl(["create", "namespace", namespace]);
  // The deploy mechanics on kwok's nodes, as before the real node joined (which would run the pods for real).
  kubectl(["label", "namespace", namespace, `${kwokPlacementLabel.key}=${kwokPlacementLabel.value}`]);
  for (const [name, key] of [
    ["hf-token", "token"],
    ["qdrant-api-key", "api-key"],
    ["gateway-api-keys", "keys.yaml"],
  ])
    kubectl(["-n", namespace, "create", "secret", "generic", name ?? "", `--from-literal=${key ?? ""}=bench`]);
  return { file, namespace };
}

async function diatonic(): Promise<number> {
  const { file, namespace } = prepare();
  try {
    const started = performance.now();
    const run = await runCli(["apply", "--spec", file, "--env", "local", "--kubeconfig", cluster.kubeconfig, "--timeout", "5m"]);
    const seconds = (performance.now() - started) / 1000;
    if (run.code !== 0) throw new Error(run.stderr);
    return seconds;
  } finally {
    await runCli(["destroy", "--spec", file, "--env", "local", "--kubeconfig", cluster.kubeconfig, "--delete-data", "--yes"]);
    kubectl(["delete", "namespace", namespace, "--wait=false", "--ignore-not-found"]);
  }
}

function oldScript(): number {
  const { file, namespace } = prepare();
  const build = buildEnvironment({ file, environment: "local" });
  const dir = mkdtempSync(join(tmpdir(), "bench-old-"));
  const folders: string[] = [];
  for (const placed of build.result.placed) {
    const folder = placed.component.split("/")[0] ?? "misc";
    if (!folders.includes(folder)) folders.push(folder);
  }
  for (const folder of folders) {
    mkdirSync(join(dir, folder), { recursive: true });
    writeFileSync(
      join(dir, folder, "all.yaml"),
      toYamlStream(build.result.placed.filter((p) => (p.component.split("/")[0] ?? "misc") === folder).map((p) => p.object)),
    );
  }
  try {
    const started = performance.now();
    for (const folder of folders) {
      kubectl(["apply", "-f", join(dir, folder)]);
      execFileSync("sleep", [String(OLD_SLEEP_SECONDS)]);
    }
    kubectl(["-n", namespace, "wait", "--for=condition=available", "deployment", "--all", "--timeout=300s"]);
    kubectl(["-n", namespace, "rollout", "status", "statefulset/qdrant", "--timeout=300s"]);
    return (performance.now() - started) / 1000;
  } finally {
    // Everything the script applied, wherever it went: the objects carry the platform's instance label.
    kubectl(["delete", "namespace", namespace, "--wait=false", "--ignore-not-found"]);
    kubectl(["delete", "clusterissuers", "-l", `app.kubernetes.io/instance=${namespace}`, "--ignore-not-found"]);
    kubectl(["delete", "certificates,secrets", "-A", "-l", `app.kubernetes.io/instance=${namespace}`, "--ignore-not-found"]);
    kubectl(["-n", "cert-manager", "delete", "secret", `${namespace}-ca`, "--ignore-not-found"]);
  }
}

const rows: { round: number; diatonicSeconds: number; oldScriptSeconds: number }[] = [];
try {
  for (let round = 1; round <= ROUNDS; round++) {
    // Alternate the order so neither method always runs on a warmer cluster.
    const first = round % 2 === 1;
    const a = first ? await diatonic() : oldScript();
    const b = first ? oldScript() : await diatonic();
    rows.push({ round, diatonicSeconds: first ? a : b, oldScriptSeconds: first ? b : a });
  }
} finally {
  simulation.stop();
  await monitoring.release();
}

const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)] ?? 0;
const d = median(rows.map((r) => r.diatonicSeconds));
const o = median(rows.map((r) => r.oldScriptSeconds));
console.log("from an empty namespace to Ready: the lab example, local environment, on the test cluster (kwok nodes)");
console.log("round  diatonic apply (s)  old script: kubectl apply per folder + sleep + wait (s)");
for (const r of rows)
  console.log(
    `${String(r.round).padStart(5)}  ${r.diatonicSeconds.toFixed(1).padStart(18)}  ${r.oldScriptSeconds.toFixed(1).padStart(20)}`,
  );
console.log(
  `median ${d.toFixed(1).padStart(18)}  ${o.toFixed(1).padStart(20)}   → diatonic is ${(o / d).toFixed(1)}× faster, and it checked readiness of every phase (the old script only waited for Deployments and Qdrant at the end)`,
);
mkdirSync("bench/results", { recursive: true });
writeFileSync(
  "bench/results/deploy.json",
  `${JSON.stringify({ benchmark: "deploy", environment: "local", oldScriptSleepSeconds: OLD_SLEEP_SECONDS, date: new Date().toISOString(), rows, medianDiatonicSeconds: d, medianOldScriptSeconds: o }, null, 2)}\n`,
);
console.log("wrote bench/results/deploy.json");
process.exit(0);
