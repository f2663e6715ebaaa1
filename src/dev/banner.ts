// What `diatonic dev` prints once its stack is up.
import { typablePath } from "../paths.ts";
import { DEMO_LORA_DESCRIPTION } from "./demo-loras.ts";
import { DEV_PORT, type DevStack } from "./stack.ts";

/** What `diatonic dev` prints once the stack is up: URLs, a curl to paste and the OpenAI SDK snippet. */
export function devBanner(
  stack: Pick<
    DevStack,
    | "adapters"
    | "apiKey"
    | "baseModel"
    | "demoLoras"
    | "consoleUrl"
    | "dataDir"
    | "embeddingsOrigin"
    | "engineUrl"
    | "environment"
    | "gatewayUrl"
    | "modelOrigin"
    | "notes"
    | "platform"
    | "specFile"
    | "vectors"
  >,
  cwd: string,
): string {
  const chat = (stack.adapters.find((a) => a.name === "code") ?? stack.adapters.find((a) => !a.rag))?.name ?? stack.baseModel;
  const rag = stack.adapters.find((a) => a.rag)?.name;
  const key = stack.apiKey ?? "unused";
  const auth = stack.apiKey !== undefined ? ` \\\n    -H "Authorization: Bearer ${stack.apiKey}"` : "";
  const shownSpec = typablePath(cwd, stack.specFile);
  const lines = [
    `diatonic dev: platform ${stack.platform} from ${shownSpec} (${stack.environment !== undefined ? `environment ${stack.environment}` : "no local environment: the spec as written"}) on this machine`,
    "",
    `  console    ${stack.consoleUrl}   (web console: overview, adapters, playground, documents, usage${stack.apiKey !== undefined ? "; sign in with the API key" : ""})`,
    `  gateway    ${stack.gatewayUrl}/v1   (OpenAI-compatible; /readyz, /metrics)`,
    `  engine     ${stack.engineUrl}/v1   (vLLM's API on llama.cpp)`,
    `  model      ${stack.modelOrigin}, served as ${stack.baseModel}`,
    `  embeddings ${stack.embeddingsOrigin}   (for RAG adapters)`,
    `  vectors    ${stack.vectors.location}   (${stack.vectors.detail})`,
    `  auth       ${stack.apiKey !== undefined ? "API key required (the one given, with admin scope)" : "off (pass --api-key KEY to turn it on)"}`,
    `  adapters   ${stack.adapters.map((a) => (a.rag ? `${a.name} (RAG)` : a.name)).join(", ")}`,
    `             (edit the spec's adapters and save: they are loaded or unloaded without a restart)`,
    ...(stack.demoLoras.length > 0
      ? [
          `  LoRAs      demo LoRAs on ${stack.demoLoras.join(", ")} (the spec declares none for them)`,
          `             ${DEMO_LORA_DESCRIPTION} (--no-demo-loras: none)`,
        ]
      : []),
    "",
    ...stack.notes.flatMap((note) => [`  NOTE: ${note}`, ""]),
    "try it:",
    `  curl -s ${stack.gatewayUrl}/v1/chat/completions${auth} \\`,
    `    -H "Content-Type: application/json" \\`,
    `    -d '{"model": "${chat}", "messages": [{"role": "user", "content": "Write hello world in Go"}]}'`,
    "",
    "OpenAI SDK (npm i openai):",
    `  import OpenAI from "openai";`,
    `  const client = new OpenAI({ baseURL: "${stack.gatewayUrl}/v1", apiKey: "${key}" });`,
    `  const reply = await client.chat.completions.create({ model: "${chat}", messages: [{ role: "user", content: "Hello" }] });`,
    `  console.log(reply.choices[0].message.content);`,
    "",
    ...(rag !== undefined
      ? [
          "RAG:",
          `  diatonic ingest --adapter ${rag} ./docs${stack.gatewayUrl.endsWith(`:${DEV_PORT}`) ? "" : ` --gateway ${stack.gatewayUrl}`}${stack.apiKey !== undefined ? ` --api-key ${stack.apiKey}` : ""}`,
          `  then ask model "${rag}": answers carry diatonic.citations (source, chunk, score)`,
          "",
        ]
      : []),
    `Ctrl-C stops everything${stack.vectors.kind === "qdrant" ? ", Qdrant too" : ""}.`,
    "",
  ];
  return lines.join("\n");
}
