// What the CLI bundle gives zod in place of its `locales/index.js` (bin/cli-build.mjs, SUBSTITUTES):
// English only, the one zod configures and the one our messages use. The index holds every
// language: ~370 KB of code every cold command would compile.
export { default as en } from "zod/v4/locales/en.js";
