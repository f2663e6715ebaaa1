// Configuration files of the real node's programs: kubelet and kube-proxy. Each setting
// that departs from the default says why (most are facts found running a kubelet on this machine:
// shared/notes/real-node.md).
import { stringify } from "yaml";
import { network, realNode } from "./config.ts";

export interface KubeletConfigOptions {
  readonly caFile: string;
  readonly containerdEndpoint: string;
  readonly podLogsDir: string;
  readonly volumePluginDir: string;
}

export function kubeletConfig(options: KubeletConfigOptions): string {
  return stringify({
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    // Served on the node's own address only (the API server reaches it there for logs, exec, port-forward).
    address: realNode.address,
    port: realNode.kubeletPort,
    healthzBindAddress: realNode.address,
    readOnlyPort: 0,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: options.caFile } },
    authorization: { mode: "Webhook" },
    containerRuntimeEndpoint: options.containerdEndpoint,
    // This machine has cgroup v1 and no systemd.
    failCgroupV1: false,
    cgroupDriver: "cgroupfs",
    cgroupsPerQOS: true,
    enforceNodeAllocatable: [],
    failSwapOn: false,
    // A build machine's disk is often fuller than a node's: evict only when it is really out.
    evictionHard: { "memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%" },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    // kube-proxy owns the iptables rules; the kubelet's would be one more thing to clean up.
    makeIPTablesUtilChains: false,
    clusterDNS: [network.dnsServiceIP],
    clusterDomain: network.clusterDomain,
    // Pods never get the machine's resolver: names resolve in the cluster or not at all.
    resolvConf: "",
    registerWithTaints: [realNode.taint],
    // Outside the state directory the kubelet would write into /var/log/pods and /usr/libexec.
    podLogsDir: options.podLogsDir,
    volumePluginDir: options.volumePluginDir,
    serializeImagePulls: false,
    rotateCertificates: false,
    serverTLSBootstrap: false,
    staticPodPath: "",
  });
}

export function kubeProxyConfig(kubeconfig: string): string {
  return stringify({
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    mode: "iptables",
    clientConnection: { kubeconfig },
    hostnameOverride: realNode.name,
    bindAddress: realNode.address,
    healthzBindAddress: `${realNode.address}:10256`,
    metricsBindAddress: `${realNode.address}:10249`,
    clusterCIDR: realNode.podSubnet,
    nodePortAddresses: [`${realNode.address}/32`],
    // Negative values need CAP_SYS_RESOURCE, which this machine's root lacks.
    oomScoreAdj: 0,
    // localhostNodePorts would set route_localnet on the whole machine.
    iptables: { localhostNodePorts: false, syncPeriod: "30s", minSyncPeriod: "0s" },
    // Zero leaves the machine's conntrack settings as they are.
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: "0s", tcpCloseWaitTimeout: "0s" },
  });
}
