import type { IIngress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { adapterRoute } from "../spec/rules.ts";
import { names, ports, type KubeObject, type Placed, type RenderContext } from "./context.ts";

/** nginx wants body sizes as `8m`; the spec speaks Kubernetes quantities (`8Mi`). */
export function nginxSize(quantity: string): string {
  const match = /^(\d+)(Ki|Mi|Gi|k|M|G)?$/.exec(quantity);
  if (!match) return quantity;
  const unit = (match[2] ?? "").charAt(0).toLowerCase();
  return `${match[1] ?? "0"}${unit}`;
}

/** The Contour HTTPProxy fields we emit (Contour's models need Node 22; see README limits). */
export interface HTTPProxy extends KubeObject {
  readonly apiVersion: "projectcontour.io/v1";
  readonly kind: "HTTPProxy";
  readonly spec: {
    readonly ingressClassName: string;
    readonly virtualhost: { readonly fqdn: string; readonly tls: { readonly secretName: string } };
    readonly routes: readonly {
      readonly conditions: readonly { readonly prefix: string }[];
      readonly services: readonly { readonly name: string; readonly port: number }[];
      readonly timeoutPolicy: { readonly response: string; readonly idle: string };
    }[];
  };
}

/**
 * The edge: only the gateway is exposed, over TLS from cert-manager. Buffering is off so SSE tokens
 * reach the client as they are generated; timeouts allow long generations. No snippet annotations.
 */
export function renderIngress(ctx: RenderContext): Placed[] {
  const { ingress, adapters } = ctx.platform.spec;
  if (!ingress.enabled) return [];
  // Only the API and the web console are public: /v1, each adapter's prefix and /console (static files;
  // it signs in with an admin key). /metrics, /healthz and /readyz stay inside.
  const prefixes = ["/v1", "/console", ...adapters.map((a) => adapterRoute(a))];
  const timeout = String(ingress.timeoutSeconds);
  if (ingress.className === "contour") {
    const proxy: HTTPProxy = {
      apiVersion: "projectcontour.io/v1",
      kind: "HTTPProxy",
      metadata: ctx.meta(names.gateway, "edge"),
      spec: {
        ingressClassName: "contour",
        virtualhost: { fqdn: ingress.host, tls: { secretName: names.gatewayTls } },
        routes: prefixes.map((prefix) => ({
          conditions: [{ prefix }],
          services: [{ name: names.gateway, port: ports.gateway }],
          timeoutPolicy: { response: `${timeout}s`, idle: `${timeout}s` },
        })),
      },
    };
    return [{ object: proxy, component: "ingress" }];
  }
  const object: IIngress = {
    apiVersion: "networking.k8s.io/v1",
    kind: "Ingress",
    metadata: ctx.meta(names.gateway, "edge", {
      annotations: {
        "nginx.ingress.kubernetes.io/proxy-body-size": nginxSize(ingress.maxBodySize),
        "nginx.ingress.kubernetes.io/proxy-read-timeout": timeout,
        "nginx.ingress.kubernetes.io/proxy-send-timeout": timeout,
        "nginx.ingress.kubernetes.io/proxy-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
        "nginx.ingress.kubernetes.io/ssl-redirect": "true",
      },
    }),
    spec: {
      ingressClassName: "nginx",
      tls: [{ hosts: [ingress.host], secretName: names.gatewayTls }],
      rules: [
        {
          host: ingress.host,
          http: {
            paths: prefixes.map((path) => ({
              path,
              pathType: "Prefix",
              backend: { service: { name: names.gateway, port: { name: "http" } } },
            })),
          },
        },
      ],
    },
  };
  return [{ object: object as KubeObject, component: "ingress" }];
}
