import type { ServerResponse } from "node:http";

/** OpenAI's error `type` values, plus the ones a gateway in front of an engine needs. */
export const ErrorType = {
  invalidRequest: "invalid_request_error",
  authentication: "authentication_error",
  permission: "permission_error",
  notFound: "not_found_error",
  rateLimit: "rate_limit_error",
  upstream: "upstream_error",
  overloaded: "overloaded_error",
  timeout: "timeout_error",
  server: "server_error",
} as const;
export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

/** A request that ends with an error response in OpenAI's shape: `{error: {message, type, param, code}}`. */
export class GatewayError extends Error {
  override readonly name = "GatewayError";
  constructor(
    readonly status: number,
    readonly type: ErrorType,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Extra response headers, e.g. `retry-after`. */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }

  body(): string {
    return JSON.stringify({ error: { message: this.message, type: this.type, param: this.param, code: this.code } });
  }
}

export const badRequest = (message: string, param: string | null = null, code = "invalid_request") =>
  new GatewayError(400, ErrorType.invalidRequest, message, code, param);

export const notFound = (message: string, code = "not_found", param: string | null = null) =>
  new GatewayError(404, ErrorType.notFound, message, code, param);

/** 405 with the `Allow` header HTTP requires; `allow` lists the methods as that header does ("GET, HEAD"). */
export const methodNotAllowed = (path: string, allow: string) =>
  new GatewayError(405, ErrorType.invalidRequest, `${path} takes ${allow.replaceAll(", ", " or ")}`, "method_not_allowed", null, { allow });

/** Writes an error response unless the response has started, in which case the socket is ended. */
export function sendError(res: ServerResponse, error: GatewayError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = error.body();
  res.writeHead(error.status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    ...error.headers,
  });
  res.end(body);
}

/** Anything thrown that is not a GatewayError is a bug: answer 500 without leaking its message. */
export function toGatewayError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  return new GatewayError(500, ErrorType.server, "internal gateway error", "internal_error");
}
