// How a presented API key is read from the request headers and checked against the stored hashes.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { authenticate, KeyStore } from "../../src/gateway/auth.ts";
import { GatewayError } from "../../src/gateway/errors.ts";

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

describe("keyless requests from a browser on another site", () => {
  const refused = (mode: "disabled" | "optional", headers: Record<string, string>) => {
    try {
      authenticate(mode, store, headers);
      return undefined;
    } catch (error) {
      assert.ok(error instanceof GatewayError);
      assert.equal(error.status, 403);
      return `${error.code ?? ""}: ${error.message}`;
    }
  };

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
