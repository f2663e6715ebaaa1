// Types for cli-build.mjs (plain JavaScript, since the install step runs it before any TypeScript tooling).
import type { Metafile, Plugin } from "esbuild";

export declare const BUNDLE_DIR: string;
export declare const BUNDLE_MAIN: string;
export declare const DIST_MAIN: string;
export declare const SUBSTITUTES: readonly { readonly path: string; readonly importer?: RegExp; readonly file: string }[];
export declare const substitutes: Plugin;
export declare function cliBundleStale(): boolean;
export declare function buildCliBundle(dir?: string): Promise<Metafile>;
export declare function commandModules(index?: string): { name: string; module: string }[];
export declare function selfContainedCommands(metafile: Metafile, modules?: readonly { name: string; module: string }[]): string[];
