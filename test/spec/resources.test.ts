import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { loadPlatform } from "../../src/spec/load.ts";
import { SpecError } from "../../src/spec/issues.ts";

/** The lab example with `resources` lines added to its base spec's workloads. */
function lab(lines: { readonly engine?: string; readonly gateway?: string }): string {
  let text = readFileSync("examples/lab/platform.yaml", "utf8");
  const engine = "      gpuSlices: 1\n";
  const gateway = "  gateway:\n";
  assert.ok(text.includes(engine) && text.includes(gateway), "the lab example's engine or gateway moved");
  if (lines.engine !== undefined) text = text.replace(engine, `${engine}      resources: ${lines.engine}\n`);
  if (lines.gateway !== undefined) text = text.replace(gateway, `${gateway}    resources: ${lines.gateway}\n`);
  return text;
}

const load = (text: string) => loadPlatform({ file: "platform.yaml", environment: "production", text });

describe("a workload's resources: defaults fill value by value", () => {
  it("a request alone keeps the default CPU request and both limits; a default limit below it rises to it", () => {
    const { spec } = load(lab({ engine: "{ requests: { memory: 48Gi } }" }));
    assert.equal(spec.model.engine.kind, "vllm");
    assert.deepEqual(spec.model.engine.resources, { requests: { cpu: "2", memory: "48Gi" }, limits: { cpu: "8", memory: "48Gi" } });
  });

  it("a request below the default limit keeps that limit", () => {
    const { spec } = load(lab({ gateway: "{ requests: { memory: 300Mi } }" }));
    assert.deepEqual(spec.gateway.resources, { requests: { cpu: "250m", memory: "300Mi" }, limits: { cpu: "2", memory: "512Mi" } });
  });

  it("a limit alone keeps the default request, which falls to the limit when above it", () => {
    const { spec } = load(lab({ engine: "{ limits: { memory: 12Gi } }", gateway: "{ limits: { cpu: 100m } }" }));
    assert.deepEqual(spec.model.engine.resources, { requests: { cpu: "2", memory: "12Gi" }, limits: { cpu: "8", memory: "12Gi" } });
    assert.deepEqual(spec.gateway.resources, { requests: { cpu: "100m", memory: "256Mi" }, limits: { cpu: "100m", memory: "512Mi" } });
  });

  it("no resources at all are the defaults", () => {
    const { spec } = load(lab({}));
    assert.deepEqual(spec.gateway.resources, { requests: { cpu: "250m", memory: "256Mi" }, limits: { cpu: "2", memory: "512Mi" } });
  });

  it("a request above a limit, both written, is refused at the request with both values", () => {
    const text = lab({ engine: "{ requests: { memory: 64Gi }, limits: { memory: 32Gi } }" });
    const line = text.split("\n").findIndex((l) => l.includes("memory: 64Gi")) + 1;
    assert.throws(
      () => load(text),
      (error: unknown) => {
        assert.ok(error instanceof SpecError);
        assert.match(
          error.message,
          new RegExp(
            `platform\\.yaml:${line}:\\d+: spec\\.model\\.engine\\.resources\\.requests\\.memory: requests\\.memory 64Gi is above limits\\.memory 32Gi`,
          ),
        );
        assert.match(error.message, /fix: lower model\.engine\.resources\.requests\.memory to at most 32Gi, or raise/);
        return true;
      },
    );
  });
});
