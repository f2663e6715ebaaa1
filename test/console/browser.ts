// A real browser for the console's tests: Debian's chromium, driven by playwright-core (no browser
// download), with the flags this machine's closed network needs, and axe-core for accessibility.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { AxeResults, Result } from "axe-core";
import { chromium, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM = process.env.DIATONIC_CHROMIUM ?? "/usr/bin/chromium";
export const ARTIFACTS = fileURLToPath(new URL("../../test-artifacts/console/", import.meta.url));

/** Why the browser tests cannot run here, or undefined when they can. */
export function chromiumMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  return `no chromium at ${CHROMIUM}: install Debian's with \`apt-get install -y chromium\` (or set DIATONIC_CHROMIUM to a Chromium binary)`;
}

/** Skipped with the reason locally; in CI (CI=true) a missing browser fails the tests instead. */
export function browserSkip(): string | false {
  const missing = chromiumMissing();
  return missing !== undefined && process.env.CI !== "true" ? missing : false;
}

/** The flags the machine's probe used: without the background-networking ones Chromium dials out at start. */
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface TestBrowser {
  readonly context: BrowserContext;
  /** A new tab (its own sessionStorage) that records CSP violations and page errors. */
  page(): Promise<Page>;
  /** CSP violations and uncaught errors seen in any tab so far. */
  readonly problems: string[];
  close(): Promise<void>;
}

export async function startBrowser(): Promise<TestBrowser> {
  const missing = chromiumMissing();
  if (missing !== undefined) throw new Error(missing);
  const profile = mkdtempSync(join(tmpdir(), "diatonic-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 900 },
  });
  const problems: string[] = [];
  return {
    context,
    problems,
    async page() {
      const page = await context.newPage();
      // Reported by the page itself, whatever Chromium prints about it.
      await page.addInitScript(
        `document.addEventListener("securitypolicyviolation", (event) => console.error("CSP violation: " + event.violatedDirective + " " + event.blockedURI))`,
      );
      page.on("console", (message) => {
        if (/CSP violation|Content.Security.Policy|Refused to/i.test(message.text())) problems.push(message.text());
      });
      page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
      return page;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

export async function screenshot(page: Page, name: string): Promise<string> {
  const path = artifactPath(name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * axe-core's violations on the page as it is. Injected through the DevTools protocol (an inline
 * script tag would be refused by the console's CSP, rightly); the report is written beside the
 * screenshots.
 */
export async function accessibility(page: Page, name: string): Promise<Result[]> {
  await page.evaluate(AXE_SOURCE);
  const results = await page.evaluate<AxeResults>(`axe.run(document, { resultTypes: ["violations"] })`);
  writeFileSync(artifactPath(`${name}.axe.json`), `${JSON.stringify(results.violations, null, 2)}\n`);
  return results.violations;
}

export function describeViolations(violations: readonly Result[]): string {
  return violations
    .map(
      (violation) =>
        `${violation.impact ?? "?"} ${violation.id}: ${violation.help} (${violation.nodes.map((node) => node.target.join(" ")).join("; ")})`,
    )
    .join("\n");
}
