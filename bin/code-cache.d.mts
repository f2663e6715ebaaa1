// Types for code-cache.mjs (plain JavaScript: bin/diatonic.js loads it before any TypeScript tooling).
export declare function runCached(bundleDir: string, command: string | undefined, argv?: readonly string[]): boolean;
