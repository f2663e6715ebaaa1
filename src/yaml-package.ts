// The `yaml` package, loaded on first use. The commands a user runs cold (render, validate, plan)
// read and write YAML with js-yaml (src/write/yaml.ts); they need this package only for a spec's
// positions in an error, anchors, or YAML that render did not write. Loaded with require (it ships
// CommonJS too), so it stays out of the CLI bundle's startup: about 260 KB of code to compile.
import { createRequire } from "node:module";
import type * as Yaml from "yaml";

type YamlPackage = typeof Yaml;

let loaded: YamlPackage | undefined;

export function yamlPackage(): YamlPackage {
  loaded ??= createRequire(import.meta.url)("yaml") as YamlPackage;
  return loaded;
}
