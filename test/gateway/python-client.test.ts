// The official Python OpenAI client (pinned, from PyPI, in its own venv) against the gateway and the
// fixed upstream: the API as a second real client reads it, errors mapped to its exception classes.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { pythonPackage } from "../support/needs.ts";
import { FIXED_TEXT, startFixedUpstream, type FixedUpstream } from "./support/fixed-upstream.ts";
import { KEYS, startTestGateway, type TestGateway } from "./support/harness.ts";

const SCRIPT = fileURLToPath(new URL("./support/python_client.py", import.meta.url));

const { python, skip } = pythonPackage("the Python client tier", "openai-python-venv", "openai==3.57.0", "openai");

describe("the official Python OpenAI client (openai 3.57.0) against the gateway", { skip: skip ?? false }, () => {
  let up: FixedUpstream;
  let gw: TestGateway;
  const checks = new Map<string, Record<string, unknown>>();

  before(async () => {
    if (python === undefined) return;
    up = await startFixedUpstream();
    gw = await startTestGateway(up.url);
    const { stdout } = await promisify(execFile)(python, [SCRIPT, gw.gateway.url, KEYS.all, KEYS.code], { timeout: 60_000 });
    for (const line of stdout.split("\n").filter((text) => text.trim() !== "")) {
      const parsed = JSON.parse(line) as { check: string } & Record<string, unknown>;
      checks.set(parsed.check, parsed);
    }
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  const check = (name: string): Record<string, unknown> => {
    const found = checks.get(name);
    assert.ok(found, `the script reported ${name}`);
    return found;
  };

  it("lists the adapters and the base model", () => {
    assert.deepEqual(check("models").ids, ["llama-base", "code", "chatbot", "handbook", "strict", "narrow"]);
  });

  it("chat, a stream with usage (content given as parts), completions and embeddings parse in its types", () => {
    assert.deepEqual(check("chat"), { check: "chat", model: "code", content: FIXED_TEXT, completion_tokens: 6 });
    assert.deepEqual(check("stream"), { check: "stream", content: FIXED_TEXT, models: ["chatbot"], completion_tokens: 6 });
    assert.deepEqual(check("completion"), { check: "completion", object: "text_completion", model: "code", text: FIXED_TEXT });
    assert.deepEqual(check("embeddings"), { check: "embeddings", count: 2, dimensions: 4 });
    assert.equal(check("prefix").model, "code");
  });

  it("each error reaches it as OpenAI's exception class with our code", () => {
    const expected: [string, string, number, string][] = [
      ["unknown-model", "NotFoundError", 404, "model_not_found"],
      ["bad-key", "AuthenticationError", 401, "invalid_api_key"],
      ["not-allowed", "PermissionDeniedError", 403, "adapter_not_allowed"],
      ["bad-request", "BadRequestError", 400, "invalid_request"],
      // No class of its own in the client: the base class, with the status and our code.
      ["too-large", "APIStatusError", 413, "request_too_large"],
    ];
    for (const [name, errorClass, status, code] of expected) {
      assert.deepEqual(
        { class: check(name).class, status: check(name).status, code: check(name).code },
        { class: errorClass, status, code },
        name,
      );
    }
  });
});
