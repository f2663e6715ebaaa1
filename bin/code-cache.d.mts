// Types for code-cache.mjs (plain JavaScript: bin/diatonic.js loads it before any TypeScript tooling).
export declare const CACHED_DIR: string;
export declare function codeCacheFile(bundleDir: string, command: string): string;
export declare function removeCodeCaches(bundleDir: string): void;
export declare function runCached(bundleDir: string, command: string | undefined, argv?: readonly string[]): boolean;
