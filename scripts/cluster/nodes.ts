// The simulated nodes and storage of the test cluster, shaped like our users' clusters: one GPU
// node labelled as NVIDIA's GPU feature discovery would label it, with time-slicing replicas
// advertised as nvidia.com/gpu capacity, and two CPU nodes, one of them ingress-ready.

export const gpuNode = {
  name: "gpu-node-0",
  product: "NVIDIA-L4",
  gpus: 2,
  timeSlicingReplicas: 4,
  memoryMiB: 23034,
} as const;

/** What the scheduler sees: every physical GPU advertised once per time-slicing replica. */
export const gpuSlices = gpuNode.gpus * gpuNode.timeSlicingReplicas;

export const cpuNodes = ["cpu-node-0", "cpu-node-1"] as const;

/** The node a kind or k3d ingress controller would be pinned to. */
export const ingressNode = cpuNodes[0];

export const storageClasses = {
  default: "local-path",
  lab: "longhorn",
} as const;

/** Provisioner names the hostPath provisioner in tools/cluster/provisioner serves. */
export const provisioners = ["rancher.io/local-path", "driver.longhorn.io"] as const;

type Manifest = Record<string, unknown>;

function node(name: string, zone: string, labels: Record<string, string>, capacity: Record<string, string>): Manifest {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      annotations: { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
      labels: {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/zone": zone,
        type: "kwok",
        ...labels,
      },
    },
    status: {
      capacity,
      allocatable: capacity,
      phase: "Running",
    },
  };
}

export function nodeManifests(): Manifest[] {
  return [
    node(
      gpuNode.name,
      "zone-a",
      {
        "node-role.kubernetes.io/gpu": "",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": gpuNode.product,
        "nvidia.com/gpu.count": String(gpuNode.gpus),
        "nvidia.com/gpu.replicas": String(gpuNode.timeSlicingReplicas),
        "nvidia.com/gpu.sharing-strategy": "time-slicing",
        "nvidia.com/gpu.memory": String(gpuNode.memoryMiB),
      },
      { cpu: "32", memory: "128Gi", pods: "110", "ephemeral-storage": "500Gi", "nvidia.com/gpu": String(gpuSlices) },
    ),
    ...cpuNodes.map((name, index) =>
      node(name, index === 0 ? "zone-a" : "zone-b", name === ingressNode ? { "ingress-ready": "true" } : {}, {
        cpu: "8",
        memory: "32Gi",
        pods: "110",
        "ephemeral-storage": "200Gi",
      }),
    ),
  ];
}

export function storageClassManifests(): Manifest[] {
  return [
    {
      apiVersion: "storage.k8s.io/v1",
      kind: "StorageClass",
      metadata: {
        name: storageClasses.default,
        annotations: { "storageclass.kubernetes.io/is-default-class": "true" },
      },
      provisioner: "rancher.io/local-path",
      reclaimPolicy: "Delete",
      volumeBindingMode: "WaitForFirstConsumer",
    },
    {
      apiVersion: "storage.k8s.io/v1",
      kind: "StorageClass",
      metadata: { name: storageClasses.lab },
      provisioner: "driver.longhorn.io",
      reclaimPolicy: "Delete",
      volumeBindingMode: "Immediate",
      allowVolumeExpansion: true,
    },
  ];
}

/**
 * What a cluster with cert-manager installed also has besides its CRDs: its namespace, where
 * ClusterIssuers keep their CA secrets. No cert-manager controller runs here.
 */
export function addonManifests(): Manifest[] {
  return [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: "cert-manager", labels: { "app.kubernetes.io/name": "cert-manager" } },
    },
  ];
}
