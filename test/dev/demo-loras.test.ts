// The demo LoRAs `diatonic dev` gives the adapters that declare none: one file per adapter, shaped
// for the served model, cached, and routed as that adapter's LoRA.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { readGgufFileInfo } from "node-llama-cpp";
import { DEMO_LORA, DemoLoras } from "../../src/dev/demo-loras.ts";
import { writeTestModels } from "../../src/engine/index.ts";
import { RenderContext } from "../../src/render/context.ts";
import { gatewayConfig } from "../../src/render/gateway.ts";
import { BUNDLED_EXAMPLE, loadPlatform } from "../../src/spec/load.ts";

const dir = mkdtempSync(join(tmpdir(), "diatonic-demo-loras-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const models = writeTestModels(join(dir, "models"));
const local = loadPlatform({ file: BUNDLED_EXAMPLE, environment: "local", localPaths: true });

describe("demo LoRAs", () => {
  it("give each adapter without a LoRA a file of its own, shaped for the model, which the gateway routes to", async () => {
    const demo = await DemoLoras.forModel(models.model, join(dir, "a"));
    assert.ok(demo);
    const written: string[][] = [];
    const { platform, adapters } = demo.apply(local, (names) => written.push([...names]));
    const names = ["chatbot", "code", "rag", "architecture", "summarization"];
    assert.deepEqual(adapters, names);
    assert.deepEqual(written, [names]);
    for (const adapter of platform.spec.adapters) {
      assert.ok(adapter.lora && "path" in adapter.lora.source, adapter.name);
      assert.equal(adapter.lora.rank, DEMO_LORA.rank);
      assert.ok(existsSync(adapter.lora.source.path));
      const info = await readGgufFileInfo(adapter.lora.source.path, { readTensorInfo: true, sourceType: "filesystem" });
      assert.equal(
        (info.metadata as unknown as { adapter: { lora: { alpha: number } } }).adapter.lora.alpha,
        DEMO_LORA.scale * DEMO_LORA.rank,
      );
      assert.deepEqual(
        [...new Set((info.tensorInfo ?? []).map((t) => /^blk\.\d+\.(\w+)\.weight\.lora_[ab]$/.exec(t.name)?.[1]))],
        [...DEMO_LORA.projections],
      );
    }
    assert.deepEqual(
      gatewayConfig(new RenderContext(platform)).adapters.map((a) => a.upstreamModel),
      names,
      "each adapter's requests go to its LoRA, no longer to the base model",
    );
    assert.deepEqual(
      local.spec.adapters.map((a) => a.lora),
      names.map(() => undefined),
      "the loaded spec is not changed",
    );

    demo.apply(local, (again) => written.push([...again]));
    assert.equal(written.length, 1, "the files are cached");
  });

  it("are the same bytes for an adapter's name on every run, and differ between adapters", async () => {
    const [first, second] = await Promise.all([
      DemoLoras.forModel(models.model, join(dir, "b")),
      DemoLoras.forModel(models.model, join(dir, "c")),
    ]);
    assert.ok(first && second);
    const pathsOf = (demo: DemoLoras) =>
      demo.apply(local).platform.spec.adapters.map((a) => (a.lora && "path" in a.lora.source ? a.lora.source.path : ""));
    const [a, b] = [pathsOf(first), pathsOf(second)];
    assert.ok(readFileSync(a[0] ?? "").equals(readFileSync(b[0] ?? "")));
    assert.ok(!readFileSync(a[0] ?? "").equals(readFileSync(a[1] ?? "")));
  });

  it("leave adapters with a LoRA of their own alone", async () => {
    const demo = await DemoLoras.forModel(models.model, join(dir, "d"));
    const withLoras = loadPlatform({ file: BUNDLED_EXAMPLE, environment: null });
    const { platform, adapters } = demo?.apply(withLoras) ?? { platform: undefined, adapters: undefined };
    assert.deepEqual(adapters, []);
    assert.deepEqual(platform?.spec.adapters, withLoras.spec.adapters);
  });

  it("are not made for a model without the projections they adapt", async () => {
    const [lora] = models.loras;
    assert.ok(lora);
    assert.equal(await DemoLoras.forModel(lora.path, join(dir, "e")), undefined);
  });
});
