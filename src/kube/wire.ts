// Objects between the deploy code and @kubernetes/client-node. Its typed models rename a few fields
// (a NetworkPolicy rule's `from` is `_from`; a CRD schema's `default` is `_default`), and its
// serializer writes only the fields a model has, under their wire names: a plain object patched
// through KubernetesObjectApi lost every ingress rule's `from`, which opens the rule to all sources
// (found on the test cluster's real node, where kube-router then let any pod reach the engine).
// So objects go out in the models' shape and come back as Kubernetes' own JSON, as watches give them.
import type { KubernetesObject } from "@kubernetes/client-node";
import { ObjectSerializer } from "@kubernetes/client-node/dist/serializer.js";
import { getSerializationType } from "@kubernetes/client-node/dist/util.js";
import type { KubeObject } from "../render/context.ts";

/** The client's model of `object` (what its serializer turns back into the same JSON). */
export function toModel(object: KubeObject): KubernetesObject {
  const model: unknown = ObjectSerializer.deserialize(object, getSerializationType(object.apiVersion, object.kind));
  return model as KubernetesObject;
}

/** Kubernetes' JSON of an object the client returned as a model (field names and timestamps as the API writes them). */
export function fromModel<T extends KubeObject>(model: unknown, apiVersion: string, kind: string): T {
  // Through JSON text: the serializer also writes every absent model field as `undefined`.
  const json: unknown = JSON.parse(
    ObjectSerializer.stringify(ObjectSerializer.serialize(model, getSerializationType(apiVersion, kind)), "application/json"),
  );
  return { ...(json as object), apiVersion, kind } as T;
}
