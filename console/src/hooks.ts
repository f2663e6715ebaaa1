import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api.ts";

export interface Loaded<T> {
  readonly data: T | undefined;
  readonly error: ApiError | undefined;
  readonly refresh: () => void;
}

function asApiError(error: unknown): ApiError {
  return error instanceof ApiError ? error : new ApiError(0, null, error instanceof Error ? error.message : String(error));
}

/**
 * Loads at once and then every `intervalMs` (0: once); a load still running when the next is due, or
 * when the view goes, is called off. The last good answer stays on screen while a reload fails.
 */
export function usePolling<T>(load: (signal: AbortSignal) => Promise<T>, intervalMs: number, deps: readonly unknown[]): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let controller = new AbortController();
    const run = () => {
      controller.abort();
      controller = new AbortController();
      const signal = controller.signal;
      loadRef.current(signal).then(
        (value) => {
          if (signal.aborted) return;
          setData(value);
          setError(undefined);
        },
        (failure: unknown) => {
          if (!signal.aborted) setError(asApiError(failure));
        },
      );
    };
    run();
    const timer = intervalMs > 0 ? setInterval(run, intervalMs) : undefined;
    return () => {
      clearInterval(timer);
      controller.abort();
    };
    // The caller names what its load depends on (the load itself is read through a ref).
  }, [...deps, tick, intervalMs]);
  const refresh = useCallback(() => setTick((value) => value + 1), []);
  return { data, error, refresh };
}
