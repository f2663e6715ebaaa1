// How a presented API key is read from the request headers and checked against the stored hashes.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { describe, it } from "node:test";
import { authenticate, KeyStore } from "../../src/gateway/auth.ts";
import { GatewayError } from "../../src/gateway/errors.ts";
import { buildEnvironment } from "../../src/render/build.ts";
import { RenderContext } from "../../src/render/context.ts";
import { gatewayConfig } from "../../src/render/gateway.ts";
import { parse, stringify } from "yaml";
import { startTestGateway } from "./support/harness.ts";

const KEY = "sk-test-0123456789";
const store = KeyStore.fromFile({
  keys: [{ sha256: createHash("sha256").update(KEY).digest("hex"), tenant: "team-a", adapters: ["code"], scopes: ["inference"] }],
});

function rejection(headers: Record<string, string>, mode: "required" | "optional" = "required"): string | undefined {
  try {
    authenticate(mode, store, headers);
    return undefined;
  } catch (error) {
    assert.ok(error instanceof GatewayError);
    assert.equal(error.status, 401);
    return error.code ?? undefined;
  }
}

describe("API key from the headers", () => {
  it("accepts every spelling of a bearer token that the pattern allows", () => {
    for (const authorization of [
      `Bearer ${KEY}`,
      `bearer ${KEY}`,
      `BEARER ${KEY}`,
      `Bearer   ${KEY}`,
      `Bearer\t${KEY}`,
      `  Bearer ${KEY}  `,
      `Bearer ${KEY} `,
      `Bearer \u00a0${KEY}\u00a0`,
    ]) {
      assert.equal(authenticate("required", store, { authorization }).tenant, "team-a", JSON.stringify(authorization));
    }
  });

  it("accepts x-api-key and api-key, trimmed", () => {
    assert.equal(authenticate("required", store, { "x-api-key": ` ${KEY} ` }).tenant, "team-a");
    assert.equal(authenticate("required", store, { "api-key": KEY }).tenant, "team-a");
  });

  it("refuses a missing, empty or wrong key, and a key with anything more or less", () => {
    assert.equal(rejection({}), "missing_api_key");
    assert.equal(rejection({ authorization: "Bearer " }), "missing_api_key");
    assert.equal(rejection({ authorization: "Bearer" }), "missing_api_key");
    for (const authorization of [
      `Bearer ${KEY}x`,
      `Bearer ${KEY.slice(0, -1)}`,
      `Bearer x${KEY}`,
      `Bearer ${KEY} x`,
      `Bearer \u0001${KEY}`,
      `Bearer ${KEY}\u0001`,
    ]) {
      assert.equal(rejection({ authorization }), "invalid_api_key", JSON.stringify(authorization));
    }
    // Not a bearer token at all: as if no key were sent.
    for (const authorization of [`Basic ${KEY}`, KEY, `Bearer\u0001${KEY}`]) {
      assert.equal(rejection({ authorization }), "missing_api_key", JSON.stringify(authorization));
    }
  });

  it("optional auth: no key is anonymous, a wrong key is still refused", () => {
    assert.equal(authenticate("optional", store, {}).tenant, "anonymous");
    assert.equal(rejection({ authorization: "Bearer nope" }, "optional"), "invalid_api_key");
  });
});

/** Why a keyless request is refused (403: its code and message), or undefined when it passes. */
function refused(mode: "disabled" | "optional", headers: Record<string, string>, keylessHosts: readonly string[] = []): string | undefined {
  try {
    authenticate(mode, store, headers, keylessHosts);
    return undefined;
  } catch (error) {
    assert.ok(error instanceof GatewayError);
    assert.equal(error.status, 403);
    return `${error.code ?? ""}: ${error.message}`;
  }
}

describe("keyless requests from a browser on another site", () => {
  it("are refused with auth disabled or optional: a page could otherwise write the RAG collection of a gateway on localhost", () => {
    for (const mode of ["disabled", "optional"] as const) {
      assert.match(
        refused(mode, { host: "127.0.0.1:8080", origin: "https://evil.example" }) ?? "",
        /^cross_origin_without_key: a browser request from another site \(Origin https:\/\/evil\.example\) needs an API key/,
        mode,
      );
      // A sandboxed frame or a file:// page sends Origin null.
      assert.match(refused(mode, { host: "127.0.0.1:8080", origin: "null" }) ?? "", /^cross_origin_without_key/, mode);
      // Another port on the same host is another site too.
      assert.match(refused(mode, { host: "127.0.0.1:8080", origin: "http://127.0.0.1:3000" }) ?? "", /^cross_origin_without_key/, mode);
    }
  });

  it("pass from the gateway's own origin (its console), behind a proxy that rewrites Host, and from programs that send no Origin", () => {
    for (const mode of ["disabled", "optional"] as const) {
      assert.equal(refused(mode, { host: "127.0.0.1:8080", origin: "http://127.0.0.1:8080" }), undefined, mode);
      assert.equal(
        refused(mode, { host: "gateway.ns.svc:8080", origin: "https://llm.example.com", "x-forwarded-host": "llm.example.com" }),
        undefined,
      );
      assert.equal(refused(mode, { host: "127.0.0.1:8080" }), undefined, mode);
    }
  });

  it("pass with a valid key whatever the Origin: a page on another site cannot add one without a preflight the gateway never grants", () => {
    assert.equal(
      authenticate("optional", store, { host: "127.0.0.1:8080", origin: "https://evil.example", authorization: `Bearer ${KEY}` }).tenant,
      "team-a",
    );
  });
});

describe("keyless requests that name the gateway by an outside host name (DNS rebinding)", () => {
  it("are refused: a site re-pointed at 127.0.0.1 is same-origin with a keyless gateway there, so Origin alone cannot tell", () => {
    for (const mode of ["disabled", "optional"] as const) {
      assert.match(
        refused(mode, { host: "evil.example:8080", origin: "http://evil.example:8080" }) ?? "",
        /^host_not_allowed: a request without an API key must name this gateway by .* not "evil\.example:8080" .*add the host name to server\.keylessHosts/,
        mode,
      );
      assert.match(refused(mode, { host: "mybox.lan:8080" }) ?? "", /^host_not_allowed/, mode);
    }
  });

  it("pass by an IP address, localhost, a cluster Service name, or a name in server.keylessHosts (any case)", () => {
    for (const host of [
      "127.0.0.1:8080",
      "[::1]:8080",
      "10.1.2.3",
      "localhost:8080",
      "console.localhost",
      "gateway:8080",
      "gateway.llama.svc:8080",
      "gateway.llama.svc.cluster.local.",
      "host.docker.internal:8080",
      "mybox.local",
    ])
      assert.equal(refused("optional", { host }), undefined, host);
    assert.equal(refused("disabled", { host: "MyBox.LAN:8080", origin: "http://MyBox.LAN:8080" }, ["mybox.lan"]), undefined);
  });

  it("pass with a valid key, whatever the host: a key is what a rebound page does not have", () => {
    assert.equal(authenticate("optional", store, { host: "evil.example", authorization: `Bearer ${KEY}` }, []).tenant, "team-a");
  });

  it("are refused by a running gateway with auth optional, and the same request by its address passes", async () => {
    const gw = await startTestGateway("http://127.0.0.1:9", { auth: { mode: "optional" } });
    try {
      const get = (host: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const url = new URL(gw.gateway.url);
          const req = request({ host: url.hostname, port: url.port, path: "/v1/models", headers: { host } }, (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (chunk: string) => (body += chunk));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on("error", reject);
          req.end();
        });
      const rebound = await get(`evil.example:${new URL(gw.gateway.url).port}`);
      assert.equal(rebound.status, 403);
      assert.match(rebound.body, /"code":"host_not_allowed"/);
      assert.equal((await get(new URL(gw.gateway.url).host)).status, 200);
    } finally {
      await gw.close();
    }
  });
});

describe("render: the host names a keyless gateway accepts", () => {
  const EXAMPLE = "examples/lab/platform.yaml";
  const render = (environment: string, keylessHosts?: string[]) => {
    const doc = parse(readFileSync(EXAMPLE, "utf8")) as { spec: { gateway: Record<string, unknown> } };
    if (keylessHosts !== undefined) doc.spec.gateway.keylessHosts = keylessHosts;
    const built = buildEnvironment({ file: EXAMPLE, environment }, stringify(doc));
    return { config: gatewayConfig(new RenderContext(built.platform)), spec: built.platform.spec };
  };

  it("with auth optional: the ingress host, the gateway Service as <name>.<namespace>, and the spec's gateway.keylessHosts", () => {
    const { config, spec } = render("local", ["gpu-box.lan"]);
    assert.equal(spec.gateway.auth, "optional");
    assert.deepEqual(config.server.keylessHosts, [spec.ingress.host, `gateway.${spec.namespace}`, "gpu-box.lan"]);
  });

  it("with auth required: none (every request has a key), and a name that is not a host name is refused", () => {
    assert.equal(render("production").config.server.keylessHosts, undefined);
    assert.throws(() => render("local", ["http://gpu-box.lan:8080"]), /keylessHosts.*must be a lower-case host name/s);
  });
});
