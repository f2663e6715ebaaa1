// The cluster's DNS: CoreDNS (built in tools/addons) as a pod on the real node behind the kube-dns
// Service, labelled k8s-app=kube-dns in kube-system, as in kind, k3d and kubeadm clusters. A
// process on the host would answer as well, but the platform's NetworkPolicies allow DNS only to
// pods with that label, and the real node enforces NetworkPolicies.
import { network, realNode, versions } from "./config.ts";

type Manifest = Record<string, unknown>;

export const corednsImage = `diatonic.test/coredns:${versions.coredns}`;

const namespace = "kube-system";
const labels = { "k8s-app": "kube-dns" };
/**
 * 53 in the pod too, as kind's, k3d's and kubeadm's CoreDNS listen: NetworkPolicies match the pod's
 * port, not the Service's, so the platform's DNS rule (port 53) must meet 53 here. A non-root
 * process may bind it because the pod lowers net.ipv4.ip_unprivileged_port_start (a namespaced,
 * "safe" sysctl); with 1053, every pod under the platform's policies could not resolve a name.
 */
const port = 53;
const readyPort = 8181;

/** Answers the cluster's names from the API server and nothing else: nothing is forwarded off the machine. */
function corefile(): string {
  return `${network.clusterDomain}:${port} in-addr.arpa:${port} {
    ready :${readyPort}
    errors
    cache 5
    kubernetes ${network.clusterDomain} in-addr.arpa {
        pods insecure
        ttl 5
    }
}
.:${port} {
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
`;
}

export function dnsManifests(): Manifest[] {
  return [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "coredns", namespace } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "system:coredns" },
      rules: [
        { apiGroups: [""], resources: ["endpoints", "services", "pods", "namespaces"], verbs: ["list", "watch"] },
        { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "system:coredns" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:coredns" },
      subjects: [{ kind: "ServiceAccount", name: "coredns", namespace }],
    },
    { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "coredns", namespace }, data: { Corefile: corefile() } },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "coredns", namespace, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: "coredns",
            priorityClassName: "system-cluster-critical",
            nodeSelector: { [realNode.label.key]: realNode.label.value },
            tolerations: [{ ...realNode.taint, operator: "Equal" }],
            // CoreDNS resolves nothing through itself.
            dnsPolicy: "Default",
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 65532,
              seccompProfile: { type: "RuntimeDefault" },
              sysctls: [{ name: "net.ipv4.ip_unprivileged_port_start", value: String(port) }],
            },
            containers: [
              {
                name: "coredns",
                image: corednsImage,
                imagePullPolicy: "Never",
                args: ["-conf", "/etc/coredns/Corefile"],
                ports: [
                  { name: "dns", containerPort: port, protocol: "UDP" },
                  { name: "dns-tcp", containerPort: port, protocol: "TCP" },
                  { name: "ready", containerPort: readyPort, protocol: "TCP" },
                ],
                readinessProbe: { httpGet: { path: "/ready", port: readyPort }, periodSeconds: 1 },
                resources: { requests: { cpu: "10m", memory: "32Mi" }, limits: { memory: "128Mi" } },
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
                volumeMounts: [{ name: "config", mountPath: "/etc/coredns", readOnly: true }],
              },
            ],
            volumes: [{ name: "config", configMap: { name: "coredns" } }],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "kube-dns", namespace, labels },
      spec: {
        clusterIP: network.dnsServiceIP,
        selector: labels,
        ports: [
          { name: "dns", port: 53, targetPort: port, protocol: "UDP" },
          { name: "dns-tcp", port: 53, targetPort: port, protocol: "TCP" },
        ],
      },
    },
  ];
}
