// Starts a real engine (llama.cpp via node-llama-cpp) on a tiny generated model in a temp dir.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { pino } from "pino";
import { startEngine, writeTestModels, type TestModelFiles } from "../../src/engine/index.ts";
import type { RunningEngine, StartEngineOptions } from "../../src/engine/index.ts";

export interface TestEngine {
  readonly running: RunningEngine;
  readonly url: string;
  readonly files: TestModelFiles;
  readonly openai: OpenAI;
  close(): Promise<void>;
}

export async function startTestEngine(options: Partial<StartEngineOptions> & { withLoras?: boolean } = {}): Promise<TestEngine> {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-engine-"));
  const files = writeTestModels(dir);
  const { withLoras = true, ...rest } = options;
  const running = await startEngine({
    modelPath: files.model,
    servedModelName: "tiny",
    loras: withLoras ? files.loras : [],
    port: 0,
    threads: 1,
    logger: pino({ level: "silent" }),
    ...rest,
  });
  return {
    running,
    url: running.url,
    files,
    // No retries: a 503 must reach the test as a 503.
    openai: new OpenAI({ baseURL: `${running.url}/v1`, apiKey: "not-checked", maxRetries: 0 }),
    close: async () => {
      await running.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function postJson(url: string, body: unknown): Promise<{ status: number; json: unknown; text: string }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch {
    json = undefined;
  }
  return { status: response.status, json, text };
}

/** Reads `data:` events of an SSE response body, up to `[DONE]`. */
export function sseEvents(text: string): unknown[] {
  const events: unknown[] = [];
  for (const block of text.split("\n\n")) {
    const line = block.trim();
    if (!line.startsWith("data: ")) continue;
    const data = line.slice("data: ".length);
    if (data === "[DONE]") break;
    events.push(JSON.parse(data) as unknown);
  }
  return events;
}
