// Placement on the real node, decided at admission: a pod of the `local` environment (label
// diatonic.ai/environment: local, which the renderer puts on every pod template) or a test pod
// labelled diatonic.ai/node: real gets the toleration of the node's taint and a nodeSelector for
// it. Everything else keeps off the tainted node and goes to the kwok nodes as before, and so do
// pods in a namespace labelled diatonic.test/placement=kwok: tests of the deploy mechanics apply
// the local environment many times over and want kwok's simulated kubelets, not real containers.
// Kubernetes 1.33's MutatingAdmissionPolicy (alpha) does it in the API server, without a webhook.
import { realNode } from "./config.ts";

type Manifest = Record<string, unknown>;

export const placementPolicyName = "diatonic-real-node";

/** API server flags the policy needs (an alpha API in 1.33). */
export const admissionPolicyFlags = [
  "--feature-gates=MutatingAdmissionPolicy=true",
  "--runtime-config=admissionregistration.k8s.io/v1alpha1=true",
] as const;

const environmentLabel = "diatonic.ai/environment";

/** A namespace with this label keeps its pods on the kwok nodes, the local environment's too. */
export const kwokPlacementLabel = { key: "diatonic.test/placement", value: "kwok" } as const;

function labelIs(key: string, value: string): string {
  return `(${JSON.stringify(key)} in object.metadata.labels && object.metadata.labels[${JSON.stringify(key)}] == ${JSON.stringify(value)})`;
}

export function placementPolicyManifests(): Manifest[] {
  const { taint, label } = realNode;
  const toleration = `Object.spec.tolerations{key: ${JSON.stringify(taint.key)}, operator: "Equal", value: ${JSON.stringify(taint.value)}, effect: ${JSON.stringify(taint.effect)}}`;
  const selectorKey = JSON.stringify(label.key);
  const patch = [
    `(has(object.spec.tolerations)`,
    `  ? [JSONPatch{op: "add", path: "/spec/tolerations/-", value: ${toleration}}]`,
    `  : [JSONPatch{op: "add", path: "/spec/tolerations", value: [${toleration}]}]) +`,
    `(has(object.spec.nodeSelector)`,
    `  ? [JSONPatch{op: "add", path: "/spec/nodeSelector/" + jsonpatch.escapeKey(${selectorKey}), value: ${JSON.stringify(label.value)}}]`,
    `  : [JSONPatch{op: "add", path: "/spec/nodeSelector", value: {${selectorKey}: ${JSON.stringify(label.value)}}}])`,
  ].join("\n");
  return [
    {
      apiVersion: "admissionregistration.k8s.io/v1alpha1",
      kind: "MutatingAdmissionPolicy",
      metadata: { name: placementPolicyName },
      spec: {
        matchConstraints: {
          resourceRules: [{ apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["pods"] }],
          namespaceSelector: { matchExpressions: [{ key: kwokPlacementLabel.key, operator: "NotIn", values: [kwokPlacementLabel.value] }] },
        },
        matchConditions: [
          {
            name: "local-environment-or-real-node",
            expression: `has(object.metadata.labels) && (${labelIs(environmentLabel, realNode.environment)} || ${labelIs(label.key, label.value)})`,
          },
          {
            // The DaemonSet controller places its pods by the template, which admission never sees.
            name: "not-a-daemonset-pod",
            expression: `!has(object.metadata.ownerReferences) || !object.metadata.ownerReferences.exists(r, r.kind == "DaemonSet")`,
          },
        ],
        failurePolicy: "Fail",
        reinvocationPolicy: "Never",
        mutations: [{ patchType: "JSONPatch", jsonPatch: { expression: patch } }],
      },
    },
    {
      apiVersion: "admissionregistration.k8s.io/v1alpha1",
      kind: "MutatingAdmissionPolicyBinding",
      metadata: { name: placementPolicyName },
      spec: { policyName: placementPolicyName },
    },
  ];
}
