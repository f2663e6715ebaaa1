// Started by the test helper when it had to start the cluster itself: waits until no test
// process uses the cluster any more, then stops it (see users.ts).
import { existsSync } from "node:fs";
import { down } from "./cluster.ts";
import { liveUsers, startedByTestsMarker, waitUntilUnused } from "./users.ts";

// The idle grace covers the gap between one test file's process ending and the next one starting.
for (;;) {
  await waitUntilUnused(15_000);
  if (!existsSync(startedByTestsMarker())) process.exit(0);
  if (await down(() => liveUsers().length === 0 && existsSync(startedByTestsMarker()))) process.exit(0);
}
