// The web console in a real browser against `diatonic dev` (in this process, the bundled lab example,
// the generated tiny model): signing in, a bad key, the adapters, a streamed chat and its stop button,
// a document uploaded and cited, usage; and with auth off, the adapters without signing in. Each view
// is screenshotted into test-artifacts/console/ and checked with axe-core; the console's CSP must
// refuse nothing it does.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it, type TestContext } from "node:test";
import type { Page } from "playwright-core";
import { ensureConsoleBuilt } from "../../scripts/console/build.ts";
import { devLogger, startDevStack, type DevStack } from "../../src/dev/stack.ts";
import { writeFailingLoraSpec } from "../dev/tiny-spec.ts";
import { accessibility, ARTIFACTS, browserSkip, describeViolations, screenshot, startBrowser, type TestBrowser } from "./browser.ts";

const KEY = "sk-console-test-0123";
const ADAPTERS = ["chatbot", "code", "rag", "architecture", "summarization"];
const skip = browserSkip();

const quietLogger = () => devLogger(new Writable({ write: (_chunk, _encoding, done) => done() }));

/** No serious or critical violation; every one found is listed in the test's output either way. */
async function checkAccessibility(t: TestContext, page: Page, name: string): Promise<void> {
  const violations = await accessibility(page, name);
  if (violations.length > 0) t.diagnostic(`axe on ${name}:\n${describeViolations(violations)}`);
  else t.diagnostic(`axe on ${name}: no violations`);
  const severe = violations.filter((violation) => violation.impact === "serious" || violation.impact === "critical");
  assert.deepEqual(
    severe.map((violation) => violation.id),
    [],
    describeViolations(severe),
  );
}

async function shot(t: TestContext, page: Page, name: string): Promise<void> {
  t.diagnostic(`screenshot ${await screenshot(page, name)}`);
}

describe("the web console in a browser", { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), "diatonic-console-test-"));
  let secured: DevStack;
  let open: DevStack;
  let browser: TestBrowser;

  before(async () => {
    await ensureConsoleBuilt();
    console.log(`console screenshots and axe reports: ${ARTIFACTS}`);
    const common = {
      cwd: process.cwd(),
      port: 0,
      model: "tiny",
      embeddings: "engine" as const,
      logger: quietLogger(),
      watch: { debounceMs: 200, pollMs: 60_000 },
    };
    browser = await startBrowser();
    // Both stacks at once; whatever started is kept for after() to close, even if the other failed.
    const [first, second] = await Promise.allSettled([
      startDevStack({ ...common, apiKey: KEY, dataDir: join(work, "secured") }),
      startDevStack({ ...common, dataDir: join(work, "open") }),
    ]);
    if (first.status === "fulfilled") secured = first.value;
    if (second.status === "fulfilled") open = second.value;
    for (const result of [first, second]) if (result.status === "rejected") throw result.reason;
  });
  after(async () => {
    await browser?.close();
    await secured?.close();
    await open?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("with auth off, opens without signing in and lists every adapter", async (t) => {
    const page = await browser.page();
    const response = await page.goto(open.consoleUrl);
    assert.equal(response?.status(), 200);
    assert.match(response?.headers()["content-type"] ?? "", /^text\/html/);
    assert.match(response?.headers()["content-security-policy"] ?? "", /default-src 'self'.*frame-ancestors 'none'/);
    await page.getByRole("heading", { name: "Where each adapter is loaded" }).waitFor();
    assert.equal(await page.getByLabel("Admin API key").count(), 0, "no sign-in form");
    const table = page.locator("section", { has: page.getByRole("heading", { name: "Where each adapter is loaded" }) });
    for (const name of ADAPTERS) await table.getByRole("cell", { name, exact: true }).waitFor();
    assert.match((await page.getByTestId("platform").textContent()) ?? "", /lab.*local.*auth off/);
    await shot(t, page, "00-auth-off-overview.png");
    await checkAccessibility(t, page, "00-auth-off-overview");
    await page.close();
  });

  it("shows a LoRA that cannot load as such, with the agent's reason, on the overview and the adapters page", async (t) => {
    const dir = join(work, "failing");
    const { spec, model } = writeFailingLoraSpec(dir);
    const stack = await startDevStack({
      cwd: dir,
      spec,
      model,
      port: 0,
      dataDir: join(dir, "data"),
      logger: quietLogger(),
      watch: { debounceMs: 200, pollMs: 60_000 },
    });
    const page = await browser.page();
    try {
      await page.goto(stack.consoleUrl);
      const table = page.locator("section", { has: page.getByRole("heading", { name: "Where each adapter is loaded" }) });
      const row = (name: string) => table.getByRole("row").filter({ has: page.getByRole("cell", { name, exact: true }) });
      // The overview refreshes every 5 s; the agent fails the file at its first try.
      await row("broken").getByText("cannot load").waitFor({ timeout: 30_000 });
      assert.match((await row("broken").textContent()) ?? "", /not a GGUF file/);
      await row("alpha").getByText("loaded", { exact: true }).waitFor({ timeout: 30_000 });
      assert.equal(await page.getByTestId("status-detail").textContent(), "cannot load: broken (see below)");
      await shot(t, page, "08-cannot-load.png");
      await checkAccessibility(t, page, "08-cannot-load");

      await page.getByRole("link", { name: "Adapters" }).click();
      const card = page.getByTestId("adapter-list").locator("article", { has: page.getByRole("heading", { name: "broken", exact: true }) });
      await card.getByText("cannot load", { exact: true }).waitFor();
      assert.match((await card.textContent()) ?? "", /Cannot load on http:\/\/127\.0\.0\.1:\d+: .*not a GGUF file/);
    } finally {
      await page.close();
      await stack.close();
    }
  });

  it("refuses a bad key with a clear message, then signs in with the admin key", async (t) => {
    const page = await browser.page();
    await page.goto(secured.consoleUrl);
    const field = page.getByLabel("Admin API key");
    await field.fill("sk-not-a-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "This key is not valid" }).waitFor();
    await shot(t, page, "01-sign-in-bad-key.png");
    await checkAccessibility(t, page, "01-sign-in-bad-key");

    await field.fill(KEY);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.getByRole("heading", { name: "Engine replicas" }).waitFor();
    assert.ok(!(await page.content()).includes(KEY), "the key is not in the page");
    assert.equal(await page.evaluate(`sessionStorage.getItem("diatonic.console.apiKey")`), KEY);
    await page.close();
  });

  describe("signed in", () => {
    let page: Page;
    before(async () => {
      page = await browser.page();
      await page.goto(secured.consoleUrl);
      await page.getByLabel("Admin API key").fill(KEY);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { name: "Overview" }).waitFor();
    });
    after(async () => page?.close());

    it("shows each adapter's configuration", async (t) => {
      await page.getByRole("link", { name: "Adapters" }).click();
      const list = page.getByTestId("adapter-list");
      for (const name of ADAPTERS) await list.getByRole("heading", { name, exact: true }).waitFor();
      const rag = list.locator("article", { has: page.getByRole("heading", { name: "rag", exact: true }) });
      assert.match((await rag.textContent()) ?? "", /collection handbook, top 5, hybrid search/);
      await shot(t, page, "02-adapters.png");
      await checkAccessibility(t, page, "02-adapters");
    });

    it("streams a chat answer as it is written, with usage, latency and the request as code; Stop calls a long one off", async (t) => {
      await page.goto(`${secured.consoleUrl}#/playground/code`);
      await page.getByLabel("Message").fill("Write hello world in Go");
      await page.getByRole("button", { name: "Send", exact: true }).click();
      const answer = page.getByTestId("answer").last();
      const seen = new Set<number>();
      const turn = page.locator("li.turn-assistant").last();
      const deadline = Date.now() + 30_000;
      while ((await turn.getAttribute("data-status")) === "streaming") {
        assert.ok(Date.now() < deadline, "the answer never finished");
        seen.add(((await answer.textContent()) ?? "").length);
      }
      assert.equal(await turn.getAttribute("data-status"), "done");
      const text = (await answer.textContent()) ?? "";
      assert.ok(text.length > 0, "an answer");
      seen.delete(0);
      seen.delete(text.length);
      assert.ok(seen.size > 0, "the answer was seen part-written before it was whole");
      assert.match(
        (await page.getByTestId("turn-meta").last().textContent()) ?? "",
        /\d+ prompt \+ \d+ completion tokens · first token .* · total /,
      );
      const code = (await page.getByTestId("snippet").textContent()) ?? "";
      assert.match(code, new RegExp(`curl -N ${secured.gatewayUrl}/v1/chat/completions`));
      assert.match(code, /\$DIATONIC_API_KEY/);
      assert.ok(!code.includes(KEY), "the snippet never shows the key");
      // The curl snippet runs as printed, with the key from the environment (asynchronously: the
      // gateway answering it runs in this process).
      const curl = await promisify(execFile)("sh", ["-c", code], {
        env: { ...process.env, DIATONIC_API_KEY: KEY },
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.match(curl.stdout, /^data: \{"id":/m);
      assert.match(curl.stdout, /data: \[DONE\]/);
      await page.getByRole("button", { name: "OpenAI SDK (Python)" }).click();
      assert.match((await page.getByTestId("snippet").textContent()) ?? "", /from openai import OpenAI[\s\S]*model="code"/);
      await shot(t, page, "03-playground.png");
      await checkAccessibility(t, page, "03-playground");

      await page.getByLabel("Max tokens").fill("8000");
      await page.getByLabel("Message").fill("Tell me a very long story");
      await page.getByRole("button", { name: "Send", exact: true }).click();
      await page.locator("li.turn-assistant:last-child .turn-text").filter({ hasText: /\S/ }).waitFor();
      await page.getByRole("button", { name: "Stop" }).click();
      await page.locator("li.turn-assistant:last-child[data-status=stopped]").waitFor();
      assert.match((await page.getByTestId("turn-meta").last().textContent()) ?? "", /stopped/);
    });

    it("uploads a document with progress, answers with its citation, and deletes it", async (t) => {
      const file = join(work, "runbook.md");
      writeFileSync(file, "# Runbook\n\nThe pager rotation is kept in the spreadsheet called heliotrope-roster.\n");
      await page.goto(`${secured.consoleUrl}#/documents/rag`);
      await page.getByRole("heading", { name: "Collection handbook" }).waitFor();
      await page.getByLabel("Files to ingest").setInputFiles(file);
      await page
        .getByTestId("upload-outcomes")
        .getByText(/runbook\.md: 1 chunk added/)
        .waitFor();
      await page.getByTestId("documents").getByRole("cell", { name: "runbook.md", exact: true }).waitFor();
      await shot(t, page, "04-documents.png");
      await checkAccessibility(t, page, "04-documents");

      await page.goto(`${secured.consoleUrl}#/playground/rag`);
      await page.getByLabel("Max tokens").fill("8");
      await page.getByLabel("Message").fill("Where is the heliotrope-roster kept?");
      await page.getByRole("button", { name: "Send", exact: true }).click();
      const citations = page.getByTestId("citations").last();
      await citations.getByText("runbook.md").first().waitFor();
      await page.locator("li.turn-assistant:last-child[data-status=done]").waitFor();
      await shot(t, page, "05-rag-answer.png");

      await page.goto(`${secured.consoleUrl}#/documents/rag`);
      await page.getByRole("button", { name: "Delete runbook.md…" }).click();
      await page.getByRole("button", { name: "Delete runbook.md", exact: true }).click();
      await page
        .getByRole("status")
        .getByText(/deleted: 1 chunk removed/)
        .waitFor();
      await page.getByText("No documents yet.").waitFor();
    });

    it("shows usage per tenant and the overview with traffic and the latest errors", async (t) => {
      await page.goto(`${secured.consoleUrl}#/usage`);
      const usage = page.getByTestId("usage");
      await usage.getByRole("rowheader", { name: "dev" }).waitFor();
      await shot(t, page, "06-usage.png");
      await checkAccessibility(t, page, "06-usage");

      await page.goto(`${secured.consoleUrl}#/overview`);
      // The bad key of the sign-in test, as the gateway kept it: status and code, never the key.
      await page
        .locator("section", { has: page.getByRole("heading", { name: "Latest errors" }) })
        .getByRole("cell", { name: "invalid_api_key" })
        .first()
        .waitFor();
      await page.locator(".chart canvas").first().waitFor();
      assert.equal(await page.locator(".chart canvas").count(), 3);
      assert.ok(!(await page.content()).includes("sk-not-a-key"));
      await shot(t, page, "07-overview.png");
      await checkAccessibility(t, page, "07-overview");
    });
  });

  it("runs everything above without one CSP violation or script error", () => {
    assert.deepEqual(browser.problems, []);
  });
});
