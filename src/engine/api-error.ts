// Errors a client gets back, in the OpenAI shape vLLM uses: {"error": {message, type, param, code}}.
// The type names are vLLM's, so a gateway cannot tell this engine from vLLM by its errors.

export const ApiErrorType = {
  400: "BadRequestError",
  404: "NotFoundError",
  405: "MethodNotAllowedError",
  413: "RequestEntityTooLargeError",
  500: "InternalServerError",
  503: "ServiceUnavailableError",
} as const;
export type ApiErrorStatus = keyof typeof ApiErrorType;

export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: ApiErrorStatus,
    message: string,
    /** The request field at fault, when there is one. */
    readonly param: string | null = null,
  ) {
    super(message);
  }

  toBody(): { error: { message: string; type: string; param: string | null; code: number } } {
    return { error: { message: this.message, type: ApiErrorType[this.status], param: this.param, code: this.status } };
  }
}

/** The queue is full: vLLM answers 503 too when it cannot take more work. */
export class QueueFullError extends ApiError {
  constructor(limit: number) {
    super(503, `The server is at capacity: ${limit} requests are already waiting. Retry later.`);
  }
}
