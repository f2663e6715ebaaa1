// What `render` gives the web console: the environment and each adapter's LoRA source in the
// gateway's config (never a URL's credentials or query), and /console routed at the edge.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { buildEnvironment } from "../../src/render/build.ts";
import { RenderContext } from "../../src/render/context.ts";
import { describeLoraSource, gatewayConfig } from "../../src/render/gateway.ts";

const EXAMPLE = "examples/lab/platform.yaml";
const SHA = "e0448d5cc792754f50de060fd4f0ffebef68d27f7b3431a0e8e4028304e0e77a";

describe("render for the web console", () => {
  it("names the environment and each adapter's LoRA source in the gateway config", () => {
    const doc = parse(readFileSync(EXAMPLE, "utf8")) as { spec: { adapters: Array<Record<string, unknown>> } };
    const chatbot = doc.spec.adapters.find((adapter) => adapter.name === "chatbot") as Record<string, unknown>;
    chatbot.lora = {
      source: { url: { url: `https://artifacts.example.com/loras/chatbot.tar.gz?X-Amz-Signature=hunter2#frag`, sha256: SHA } },
      rank: 16,
    };
    const built = buildEnvironment({ file: EXAMPLE, environment: "production" }, stringify(doc));
    const config = gatewayConfig(new RenderContext(built.platform));
    assert.equal(config.environment, "production");
    const byName = new Map(config.adapters.map((adapter) => [adapter.name, adapter]));
    assert.deepEqual(byName.get("chatbot")?.lora, {
      source: "url https://artifacts.example.com/loras/chatbot.tar.gz?… (sha256 e0448d5cc792…)",
      rank: 16,
    });
    assert.ok(!JSON.stringify(config).includes("hunter2") && !JSON.stringify(config).includes("X-Amz-Signature"));
    assert.deepEqual(byName.get("code")?.lora, {
      source: "huggingFace diatonic-lab/llama3-8b-code-lora@5f1c7e2d9a8b4c3e6f70a1b2c3d4e5f6a7b8c9d0",
      rank: 16,
    });

    const local = gatewayConfig(new RenderContext(buildEnvironment({ file: EXAMPLE, environment: "local" }).platform));
    assert.equal(local.environment, "local");
    assert.equal(local.adapters.find((adapter) => adapter.name === "code")?.lora, undefined, "local runs the adapters on the base model");
  });

  it("describes a LoRA on this machine by its path", () => {
    assert.equal(describeLoraSource({ path: "models/tiny-lora-a.gguf" }), "path models/tiny-lora-a.gguf");
    assert.equal(
      describeLoraSource({ huggingFace: { repo: "org/lora", revision: "v1", file: "a.gguf" } }),
      "huggingFace org/lora@v1 a.gguf",
    );
  });

  it("routes /console at the edge beside the API, and still not /metrics", () => {
    const built = buildEnvironment({ file: EXAMPLE, environment: "production" });
    const ingress = built.result.placed.find((placed) => placed.object.kind === "Ingress")?.object as unknown as {
      spec: { rules: Array<{ http: { paths: Array<{ path: string }> } }> };
    };
    const paths = ingress.spec.rules[0]?.http.paths.map((path) => path.path) ?? [];
    assert.deepEqual(paths.slice(0, 2), ["/v1", "/console"]);
    assert.ok(!paths.includes("/metrics"));
  });
});
