// Errors of starting and stopping the test cluster, named so that callers can tell them apart.

export class ClusterStartError extends Error {
  override name = "ClusterStartError";
}
