// What the CLI bundle gives kubernetes-models' validators in place of `ajv-i18n` (bin/cli-build.mjs,
// SUBSTITUTES): its default export with English only, which is all they call (`localize.en`). The
// package's index holds every language: ~160 KB of code every cold render and validate would compile.
import en from "ajv-i18n/localize/en/index.js";

export default { en };
