// `npm run cluster:up | cluster:down | cluster:env | cluster:status | cluster:build`
import { rmSync, writeFileSync } from "node:fs";
import { ensureBinaries } from "./build.ts";
import { down, isHealthy, memoryMiB, readState, up } from "./cluster.ts";
import { clusterPaths, versions } from "./config.ts";
import { startedByTestsMarker } from "./users.ts";

const usage = "usage: cluster up | down | env | status | build";

async function main(command: string | undefined): Promise<number> {
  switch (command) {
    case "up": {
      const result = await up();
      const { state } = result;
      // An explicit `up` keeps the cluster running even if a test run started it.
      rmSync(startedByTestsMarker(), { force: true });
      // Lets a caller (.ci/run) stop afterwards only a cluster that it started itself.
      if (process.env.DIATONIC_CLUSTER_UP_RESULT) {
        writeFileSync(process.env.DIATONIC_CLUSTER_UP_RESULT, result.reused ? "reused\n" : "started\n");
      }
      if (result.reused) console.error(`cluster: already running at ${state.server}`);
      if (state.realNode !== undefined && "skipped" in state.realNode) {
        console.error(`cluster: no real node in this cluster: ${state.realNode.skipped}`);
      } else console.error(`cluster: started in ${state.startupSeconds} s (build/cache check ${result.buildSeconds.toFixed(1)} s)`);
      console.log(`export KUBECONFIG=${state.kubeconfig}`);
      return 0;
    }
    case "down":
      await down();
      console.error("cluster: stopped, state removed");
      return 0;
    case "env": {
      if (!(await isHealthy())) {
        console.error("cluster: not running (npm run cluster:up)");
        return 1;
      }
      console.log(`export KUBECONFIG=${clusterPaths().kubeconfig}`);
      return 0;
    }
    case "status": {
      const healthy = await isHealthy();
      const state = readState();
      console.log(JSON.stringify({ healthy, ...(state ?? {}), versions, memoryMiB: memoryMiB(), paths: clusterPaths() }, null, 2));
      return healthy ? 0 : 1;
    }
    case "build": {
      const result = ensureBinaries();
      console.error(`cluster: binaries ${result.built ? "built" : "current"} in ${result.seconds.toFixed(1)} s at ${result.binDir}`);
      return 0;
    }
    default:
      console.error(usage);
      return 2;
  }
}

main(process.argv[2]).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`cluster: ${error instanceof Error ? error.message : String(error)}`);
    if (process.argv[2] === "up") {
      console.error(
        "cluster: what did start is left running, with its logs, for a look; `npm run cluster:down` removes it " +
          "(DIATONIC_REAL_NODE=0 starts without the real node)",
      );
    }
    process.exit(1);
  },
);
