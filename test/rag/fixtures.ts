// A small handbook whose answers each live in one file, with code words the keyword half must find.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const HANDBOOK: Readonly<Record<string, string>> = {
  "onboarding.md": `# Onboarding

## First day

New staff collect their laptop from the front desk on day one. The laptop arrives with the
standard image; ask the service desk for the VPN profile called aurora-gate.

## First week

Shadow a teammate for three days and finish the security course before Friday.
`,
  "errors.txt": `Storage error codes

E-4711 means the scratch volume is full: delete old checkpoints under /scratch.

E-5120 means the quota service is unreachable: retry after five minutes.
`,
  "badges.html": `<!doctype html><html><head><title>Badges</title><style>body{color:red}</style></head>
<body><h1>Building access</h1><p>Visitors need a <b>yellow badge</b> signed by their host.</p>
<h2>After hours</h2><p>After 18:00 the night porter, Quillon, checks every badge at the east door.</p>
<script>console.log("not content")</script></body></html>
`,
};

/** Writes the handbook under `dir/handbook/` and returns that folder. */
export function writeHandbook(dir: string): string {
  const root = join(dir, "handbook");
  mkdirSync(root, { recursive: true });
  for (const [name, text] of Object.entries(HANDBOOK)) writeFileSync(join(root, name), text);
  return root;
}
