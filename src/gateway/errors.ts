import type { ServerResponse } from "node:http";

/** OpenAI's error `type` values, plus the ones a gateway in front of an engine needs. */
export const ErrorType = {
  invalidRequest: "invalid_request_error",
  authentication: "authentication_error",
  permission: "permission_error",
  notFound: "not_found_error",
  conflict: "conflict_error",
  unprocessableEntity: "unprocessable_entity_error",
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

/**
 * Writes an error response unless the response has started, in which case the socket is ended.
 * `requestId` goes out as `x-request-id`, as on proxied answers, so a refused call can be traced too.
 */
export function sendError(res: ServerResponse, error: GatewayError, requestId?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = error.body();
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    ...error.headers,
  };
  if (requestId !== undefined) headers["x-request-id"] = requestId;
  res.writeHead(error.status, headers);
  res.end(body);
}

/** OpenAI's error type for each 4xx an engine may answer; any other 4xx is an invalid request. */
const UPSTREAM_4XX_TYPES: Readonly<Record<number, ErrorType>> = {
  401: ErrorType.authentication,
  403: ErrorType.permission,
  404: ErrorType.notFound,
  409: ErrorType.conflict,
  422: ErrorType.unprocessableEntity,
  429: ErrorType.rateLimit,
};

/** FastAPI's validation errors (a 422 from vLLM's server): `{detail: [{loc: ["body", "messages", 0], msg}]}`. */
interface ValidationDetail {
  readonly loc?: unknown;
  readonly msg?: unknown;
}

const fieldPath = (loc: unknown): string | null =>
  Array.isArray(loc) && loc.length > 1 && loc[0] === "body" ? loc.slice(1).join(".") : null;

/**
 * An engine's 4xx body in OpenAI's error shape. Engines answer in their own (vLLM and ours:
 * `{error: {message, type: "BadRequestError", code: 400}}`; FastAPI: `{detail}`; or plain text),
 * and SDKs read `type` and `code` as OpenAI's strings: the type follows the status, a code that is
 * not a string is dropped, the message and param are kept.
 */
export function upstreamRefusal(status: number, body: string, upstream: string): GatewayError {
  const type = UPSTREAM_4XX_TYPES[status] ?? ErrorType.invalidRequest;
  const refused = `the engine (upstream ${upstream}) refused the request with status ${status}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    // Not JSON (a proxy's HTML page, a plain-text error): the status, and short plain text as it came.
    const text = body.trim().replace(/\s+/g, " ");
    const detail = text !== "" && !text.startsWith("<") ? `: ${text.slice(0, 200)}` : "";
    return new GatewayError(status, type, refused + detail, null, null);
  }
  const shape = (typeof parsed === "object" && parsed !== null ? parsed : {}) as { error?: unknown; detail?: unknown };
  // `{error: {...}}`, or the error's members at the top (older vLLM: `{object: "error", message, type, param, code}`).
  const error = (typeof shape.error === "object" && shape.error !== null ? shape.error : shape) as {
    message?: unknown;
    param?: unknown;
    code?: unknown;
  };
  let message = typeof error.message === "string" ? error.message : undefined;
  let param = typeof error.param === "string" ? error.param : null;
  if (message === undefined && typeof shape.error === "string") message = shape.error;
  if (message === undefined && typeof shape.detail === "string") message = shape.detail;
  if (message === undefined && Array.isArray(shape.detail)) {
    const details = shape.detail as ValidationDetail[];
    message = details.map((item) => `${fieldPath(item.loc) ?? "request"}: ${String(item.msg)}`).join("; ");
    param = fieldPath(details[0]?.loc);
  }
  const code = typeof error.code === "string" ? error.code : null;
  return new GatewayError(status, type, message ?? refused, code, param);
}

/** Anything thrown that is not a GatewayError is a bug: answer 500 without leaking its message. */
export function toGatewayError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  return new GatewayError(500, ErrorType.server, "internal gateway error", "internal_error");
}
