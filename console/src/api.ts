// The gateway's public API as the console calls it: same origin, the admin key (if any) as a bearer
// token. The key lives in sessionStorage only: it goes when the tab closes.

const KEY_STORAGE = "diatonic.console.apiKey";

/** An error answer in OpenAI's shape (`{error: {message, type, code}}`), or a failure to reach the gateway. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string | null,
    message: string,
  ) {
    super(message);
  }
}

export function storedKey(): string | undefined {
  return sessionStorage.getItem(KEY_STORAGE) ?? undefined;
}

export function storeKey(key: string | undefined): void {
  if (key === undefined) sessionStorage.removeItem(KEY_STORAGE);
  else sessionStorage.setItem(KEY_STORAGE, key);
}

interface ErrorBody {
  readonly error?: { readonly message?: unknown; readonly code?: unknown };
}

export async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text();
  try {
    const { error } = JSON.parse(text) as ErrorBody;
    const message = typeof error?.message === "string" ? error.message : `the gateway answered ${response.status}`;
    return new ApiError(response.status, typeof error?.code === "string" ? error.code : null, message);
  } catch {
    return new ApiError(response.status, null, `the gateway answered ${response.status}: ${text.slice(0, 200)}`);
  }
}

/** What to tell a person whose key was refused. */
export function signInProblem(error: ApiError): string {
  if (error.code === "missing_scope") return "This key has no admin scope. The console needs a key whose scopes include admin.";
  if (error.code === "invalid_api_key") return "This key is not valid: the gateway knows no such key.";
  if (error.code === "missing_api_key") return "This gateway requires an API key with the admin scope.";
  return error.message;
}

export class Api {
  /** Called when the gateway refuses the key mid-session (rotated out, scope removed). */
  onUnauthorized: ((error: ApiError) => void) | undefined;

  constructor(readonly key: string | undefined) {}

  headers(json = false): Record<string, string> {
    const headers: Record<string, string> = {};
    if (this.key !== undefined) headers.authorization = `Bearer ${this.key}`;
    if (json) headers["content-type"] = "application/json";
    return headers;
  }

  /** fetch with the key; an error answer is thrown as an ApiError. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(path, {
        ...init,
        headers: { ...this.headers(init.body !== undefined), ...(init.headers as Record<string, string> | undefined) },
      });
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") throw error;
      throw new ApiError(0, "unreachable", `the gateway cannot be reached (${error instanceof Error ? error.message : String(error)})`);
    }
    if (!response.ok) {
      const error = await errorOf(response);
      // A key refused outright, or one that lost the admin scope (a key without the inference scope
      // may still use the console; its chats are refused with their own message).
      if (response.status === 401 || (response.status === 403 && error.code === "missing_scope" && path.startsWith("/v1/admin/")))
        this.onUnauthorized?.(error);
      throw error;
    }
    return response;
  }

  async get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return (await (await this.request(path, signal !== undefined ? { signal } : {})).json()) as T;
  }

  async post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return (await (
      await this.request(path, { method: "POST", body: JSON.stringify(body), ...(signal !== undefined ? { signal } : {}) })
    ).json()) as T;
  }
}
