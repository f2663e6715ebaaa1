import type { ICertificate } from "@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate";
import type { IClusterIssuer } from "@kubernetes-models/cert-manager/cert-manager.io/v1/ClusterIssuer";
import type { TlsIssuerName } from "../spec/schema.ts";
import { names, type KubeObject, type Placed, type RenderContext } from "./context.ts";

const ACME_SERVERS = {
  acmeStaging: "https://acme-staging-v02.api.letsencrypt.org/directory",
  acmeProduction: "https://acme-v02.api.letsencrypt.org/directory",
} as const;

/** The ClusterIssuer name that signs the ingress certificate for `issuer`. */
export function issuerName(ctx: RenderContext, issuer: TlsIssuerName): string {
  switch (issuer) {
    case "selfSigned":
      return ctx.clusterMeta("ca", "tls").name;
    case "acmeStaging":
      return ctx.clusterMeta("letsencrypt-staging", "tls").name;
    case "acmeProduction":
      return ctx.clusterMeta("letsencrypt-production", "tls").name;
  }
}

/**
 * cert-manager objects: a self-signed root → internal CA certificate → CA ClusterIssuer (always, so
 * internal TLS works without the internet), ACME issuers when an account is configured, and the
 * ingress certificate from the chosen issuer.
 */
export function renderCertificates(ctx: RenderContext): Placed[] {
  const { spec } = ctx.platform;
  const selfSigned = spec.certificates.selfSigned;
  const rootIssuer: IClusterIssuer = {
    apiVersion: "cert-manager.io/v1",
    kind: "ClusterIssuer",
    metadata: ctx.clusterMeta("selfsigned", "tls"),
    spec: { selfSigned: {} },
  };
  const caSecret = ctx.clusterMeta("ca", "tls").name;
  const caCertificate: ICertificate = {
    apiVersion: "cert-manager.io/v1",
    kind: "Certificate",
    metadata: { ...ctx.clusterMeta("ca", "tls"), namespace: selfSigned.clusterResourceNamespace },
    spec: {
      isCA: true,
      commonName: selfSigned.caCommonName,
      secretName: caSecret,
      duration: "87600h",
      renewBefore: "720h",
      privateKey: { algorithm: "ECDSA", size: 256, rotationPolicy: "Always" },
      issuerRef: { group: "cert-manager.io", kind: "ClusterIssuer", name: rootIssuer.metadata?.name ?? "" },
    },
  };
  const caIssuer: IClusterIssuer = {
    apiVersion: "cert-manager.io/v1",
    kind: "ClusterIssuer",
    metadata: ctx.clusterMeta("ca", "tls"),
    spec: { ca: { secretName: caSecret } },
  };
  const objects: KubeObject[] = [rootIssuer as KubeObject, caCertificate as KubeObject, caIssuer as KubeObject];

  const acme = spec.certificates.acme;
  if (acme) {
    for (const which of ["acmeStaging", "acmeProduction"] as const) {
      const name = issuerName(ctx, which);
      const solver =
        acme.solver.type === "http01"
          ? { http01: { ingress: { class: spec.ingress.className } } }
          : {
              dns01: {
                cloudflare: { apiTokenSecretRef: { name: acme.solver.apiTokenSecret.name, key: acme.solver.apiTokenSecret.key } },
              },
            };
      const issuer: IClusterIssuer = {
        apiVersion: "cert-manager.io/v1",
        kind: "ClusterIssuer",
        metadata: { name, labels: ctx.labels(name, "tls") },
        spec: {
          acme: { server: ACME_SERVERS[which], email: acme.email, privateKeySecretRef: { name: `${name}-account` }, solvers: [solver] },
        },
      };
      objects.push(issuer as KubeObject);
    }
  }

  if (spec.ingress.enabled) {
    const certificate: ICertificate = {
      apiVersion: "cert-manager.io/v1",
      kind: "Certificate",
      metadata: ctx.meta(names.gatewayTls, "tls"),
      spec: {
        secretName: names.gatewayTls,
        dnsNames: [spec.ingress.host],
        duration: "2160h",
        renewBefore: "360h",
        privateKey: { algorithm: "ECDSA", size: 256, rotationPolicy: "Always" },
        issuerRef: { group: "cert-manager.io", kind: "ClusterIssuer", name: issuerName(ctx, spec.ingress.tls.issuer) },
      },
    };
    objects.push(certificate as KubeObject);
  }
  return objects.map((object) => ({ object, component: "certificates" }));
}
