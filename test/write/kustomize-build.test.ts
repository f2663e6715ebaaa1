import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import type { KubeObject } from "../../src/render/context.ts";
import { buildRenderedTree } from "../../src/write/kustomize-build.ts";
import { objectKey } from "../../src/write/kustomize.ts";
import { parseLabelSelector } from "../../src/write/kustomize-target.ts";
import { kubectl, unmet } from "../support/needs.ts";

/** Agreement with Kustomize needs the test cluster's kubectl (see test/support/needs.ts). */
const KUBECTL = kubectl();
const kubectlSkip = unmet("the kustomize round trip", [KUBECTL]);

const RESOURCES = `apiVersion: v1
kind: Namespace
metadata: {name: ns, labels: {env: base}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: ns, labels: {env: base, tier: web}}
data: {k: v}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b, namespace: ns, labels: {env: prod}}
data: {k: v}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: a, namespace: ns, labels: {env: base}}
spec: {replicas: 1}
`;

const MARK = "- op: add\n  path: /metadata/labels/marked\n  value: 'yes'\n";
const RELABEL = "- op: replace\n  path: /metadata/labels/env\n  value: prod\n";

/** A tree of the four objects above and `patches` (each `[target or undefined, patch file content]`). */
function tree(patches: readonly (readonly [string | undefined, string])[]): string {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-kustomize-build-"));
  writeFileSync(join(dir, "objects.yaml"), RESOURCES);
  const entries = patches.map(([target, content], i) => {
    writeFileSync(join(dir, `p${i}.yaml`), content);
    return `  - path: p${i}.yaml${target !== undefined ? `\n    target: ${target}` : ""}\n`;
  });
  writeFileSync(
    join(dir, "kustomization.yaml"),
    `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [objects.yaml]\npatches:\n${entries.join("")}`,
  );
  return dir;
}

const byKey = (objects: readonly KubeObject[]) =>
  new Map(objects.map((object) => [objectKey(object), JSON.parse(JSON.stringify(object)) as KubeObject]));

/** Trees that use label selectors the way render's overlays do, and their neighbours. */
const AGREED: Record<string, readonly (readonly [string | undefined, string])[]> = {
  "key=value, every kind, cluster-scoped included": [["{labelSelector: env=base}", RELABEL]],
  "key==value and spaces": [["{labelSelector: ' tier , env == base '}", MARK]],
  "key alone": [["{labelSelector: tier}", MARK]],
  "!key": [["{labelSelector: '!tier'}", MARK]],
  "key!=value, which also selects objects without the label": [["{labelSelector: 'tier!=web'}", MARK]],
  "kind and label": [["{kind: ConfigMap, labelSelector: env=base}", MARK]],
  "a name without a kind selects every kind of that name": [["{name: a}", MARK]],
  "a selector that selects nothing changes nothing": [["{labelSelector: env=staging}", MARK]],
  "a name that selects nothing changes nothing": [["{kind: ConfigMap, name: missing}", MARK]],
  "the label patch first, then one object's own patch, then a delete": [
    ["{labelSelector: env=base}", RELABEL],
    ["{group: '', version: v1, kind: ConfigMap, name: a, namespace: ns}", "- op: replace\n  path: /data/k\n  value: w\n"],
    [undefined, "$patch: delete\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a, namespace: ns}\n"],
    ["{labelSelector: env=prod}", MARK],
  ],
};

describe("the in-process Kustomize build", () => {
  for (const [what, patches] of Object.entries(AGREED)) {
    it(`builds what kubectl kustomize builds: ${what}`, { skip: kubectlSkip ?? false }, () => {
      const dir = tree(patches);
      const built = buildRenderedTree(dir);
      assert.ok(built !== undefined, "built in-process");
      const expected = parseAllDocuments(execFileSync(KUBECTL.path, ["kustomize", dir], { encoding: "utf8" })).map(
        (document) => document.toJS() as KubeObject,
      );
      const left = byKey(built.map((b) => b.object));
      const right = byKey(expected);
      assert.deepEqual([...left.keys()].sort(), [...right.keys()].sort());
      for (const [key, object] of right) assert.deepEqual(left.get(key), object, key);
    });
  }

  it("leaves to kubectl what it does not know or what Kustomize would refuse", () => {
    const declined: Record<string, readonly (readonly [string | undefined, string])[]> = {
      "a set-based selector": [["{labelSelector: 'env in (base)'}", MARK]],
      "an annotation selector": [["{annotationSelector: a=b}", MARK]],
      "a name pattern": [["{name: 'a|b'}", MARK]],
      "a replace that misses on one of the selected objects": [
        ["{labelSelector: env=base}", "- op: replace\n  path: /data/k\n  value: w\n"],
      ],
      "a namespace in the target and an object without one (Kustomize's kind table decides)": [["{name: ns, namespace: ns}", MARK]],
    };
    for (const [what, patches] of Object.entries(declined)) assert.equal(buildRenderedTree(tree(patches)), undefined, what);
  });

  it("reads the label selector forms it supports and no others", () => {
    assert.deepEqual(parseLabelSelector("diatonic.ai/environment=base"), [{ key: "diatonic.ai/environment", op: "equals", value: "base" }]);
    assert.deepEqual(parseLabelSelector("a, !b, c!=d, e=="), [
      { key: "a", op: "exists" },
      { key: "b", op: "absent" },
      { key: "c", op: "differs", value: "d" },
      { key: "e", op: "equals", value: "" },
    ]);
    assert.deepEqual(parseLabelSelector(""), []);
    for (const unsupported of ["a in (b)", "a notin (b)", "!a=b", "a=b c", "a>1", "-a=b", "a=-b"])
      assert.equal(parseLabelSelector(unsupported), undefined, unsupported);
  });
});
