// What the CLI bundle gives kubernetes-models' validators in place of
// `@kubernetes-models/validate/runtime/re2`: the same RE2 (re2-wasm, Go's regular-expression syntax,
// as the API server checks patterns), compiled on its first use, not when the module loads. A few
// prometheus-operator schemas build an RE2 at module load for a field that is rarely set, and that
// alone loads and compiles re2-wasm's WebAssembly: about 50 ms of every `render` and `validate`.
import { createRequire } from "node:module";

interface Re2 {
  test(input: string): boolean;
}
type Re2Constructor = new (pattern: string, flags?: string) => Re2;

let loaded: Re2Constructor | undefined;

/** re2-wasm's RE2, loaded on first call (it is CommonJS and compiles its WebAssembly synchronously). */
function re2(): Re2Constructor {
  loaded ??= (createRequire(import.meta.url)("re2-wasm") as { RE2: Re2Constructor }).RE2;
  return loaded;
}

/** Whether re2-wasm has been loaded by this module yet (for tests). */
export function re2Loaded(): boolean {
  return loaded !== undefined;
}

export default class LazyRE2 {
  private compiled: Re2 | undefined;

  constructor(
    readonly source: string,
    readonly flags?: string,
  ) {}

  /** As RE2's test; the pattern is compiled on the first call (a bad pattern throws then, as RE2's constructor would). */
  test(input: string): boolean {
    this.compiled ??= new (re2())(this.source, this.flags);
    return this.compiled.test(input);
  }
}
