// Request bodies of the vLLM/OpenAI endpoints the engine serves, validated with zod.
// Unknown fields are ignored (as vLLM does for most); fields we cannot honour are rejected with 400.
import { z } from "zod";
import { ApiError } from "./api-error.ts";

const stop = z.union([z.string(), z.array(z.string()).max(16)]).nullish();

const sampling = {
  model: z.string().min(1),
  max_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  seed: z.number().int().nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  // vLLM's own sampling fields: -1 (or 0) and 0 turn them off, as in vLLM.
  top_k: z.number().int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: notServed(
    (value) => value === 1,
    "this engine does not serve repetition_penalty (it counts the prompt): use presence_penalty or frequency_penalty",
  ),
  stop,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  n: z.literal(1, { error: "this engine answers with one choice per request (n: 1): send n requests for n choices" }).nullish(),
};

/** A field this engine cannot honour: absent, null or "off" passes; anything else is a 400 saying so. */
function notServed(off: (value: unknown) => boolean, why: string) {
  return z
    .unknown()
    .refine((value) => value === undefined || value === null || off(value), { error: why })
    .optional();
}

const NO_LOGPROBS = "this engine returns no log probabilities: leave logprobs and top_logprobs out (vLLM in the cluster serves them)";

const TEXT_ONLY =
  'this engine reads text only: send content as a string or as text parts ({"type": "text", "text": …}); image, audio and file parts are not served';
const textPart = z.object({ type: z.literal("text", { error: TEXT_ONLY }), text: z.string() }, { error: TEXT_ONLY });

export const chatCompletionRequest = z.object({
  ...sampling,
  max_completion_tokens: z.number().int().positive().nullish(),
  logprobs: notServed((value) => value === false, NO_LOGPROBS),
  top_logprobs: notServed((value) => value === 0, NO_LOGPROBS),
  tools: notServed(
    (value) => Array.isArray(value) && value.length === 0,
    "this engine does not call tools (function calling): leave tools out",
  ),
  response_format: z
    .object({ type: z.string() })
    .refine((format) => format.type === "text", {
      error:
        "this engine answers in free text only (no JSON mode or JSON schema): leave response_format out, and ask for JSON in the prompt",
    })
    .nullish(),
  messages: z
    .array(
      z
        .object({
          role: z.enum(["system", "developer", "user", "assistant"]),
          content: z.union([z.string(), z.array(textPart)], { error: TEXT_ONLY }).nullish(),
        })
        // OpenAI's rule: only an assistant's message may come without content (its tool calls stand in for it).
        .refine((message) => message.role === "assistant" || (message.content !== undefined && message.content !== null), {
          error: "is required for a system, developer or user message (only an assistant's may be left out)",
          path: ["content"],
        }),
    )
    .min(1),
});
export type ChatCompletionRequest = z.infer<typeof chatCompletionRequest>;

export const completionRequest = z.object({
  ...sampling,
  logprobs: notServed((value) => value === 0, NO_LOGPROBS),
  echo: notServed((value) => value === false, "this engine does not echo the prompt: leave echo out and prepend the prompt yourself"),
  best_of: notServed((value) => value === 1, "this engine samples one completion per request (best_of: 1): send best_of requests and pick"),
  suffix: notServed((value) => value === "", "this engine does not insert text before a suffix: leave suffix out"),
  prompt: z
    .union([z.string(), z.array(z.string()).length(1)], {
      error:
        "must be a string (or an array of one string): this engine neither batches prompts nor takes token ids, so send one request per prompt, as text",
    })
    .refine((prompt) => (typeof prompt === "string" ? prompt : (prompt[0] ?? "")).length > 0, {
      error: "is empty: send the text to continue",
    }),
});
export type CompletionRequest = z.infer<typeof completionRequest>;

export const embeddingRequest = z.object({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.string()).min(1).max(256)]),
  encoding_format: z.enum(["float", "base64"]).nullish(),
});
export type EmbeddingRequest = z.infer<typeof embeddingRequest>;

export const loadLoraRequest = z.object({
  lora_name: z.string().min(1),
  lora_path: z.string().min(1),
  load_inplace: z.boolean().nullish(),
});
export const unloadLoraRequest = z.object({ lora_name: z.string().min(1), lora_path: z.string().nullish() });

/** Parses a body with a schema; the first issue becomes a 400 that names the field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const param = issue && issue.path.length > 0 ? issue.path.join(".") : null;
  throw new ApiError(400, param ? `${param}: ${issue?.message ?? "invalid"}` : (issue?.message ?? "invalid request body"), param);
}

export interface Sampling {
  readonly maxTokens: number | undefined;
  readonly temperature: number;
  readonly topP: number;
  /** 0: off. */
  readonly topK: number;
  /** 0: off. */
  readonly minP: number;
  /** OpenAI's: subtracted from the logit of each token the completion has used, once (presence) or per use (frequency). */
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  readonly seed: number | undefined;
  readonly stop: readonly string[];
}

/** OpenAI's defaults: temperature 1, top_p 1, no penalties, no stop strings (and vLLM's: no top_k, min_p). */
export function samplingOf(request: ChatCompletionRequest | CompletionRequest, defaultMaxTokens?: number): Sampling {
  const maxTokens =
    ("max_completion_tokens" in request ? request.max_completion_tokens : undefined) ?? request.max_tokens ?? defaultMaxTokens;
  const stopField = request.stop ?? [];
  return {
    maxTokens,
    temperature: request.temperature ?? 1,
    topP: request.top_p ?? 1,
    topK: Math.max(0, request.top_k ?? 0),
    minP: request.min_p ?? 0,
    presencePenalty: request.presence_penalty ?? 0,
    frequencyPenalty: request.frequency_penalty ?? 0,
    seed: request.seed ?? undefined,
    stop: (typeof stopField === "string" ? [stopField] : stopField).filter((s) => s.length > 0),
  };
}

export function messageText(content: ChatCompletionRequest["messages"][number]["content"]): string {
  if (content === null || content === undefined) return "";
  return typeof content === "string" ? content : content.map((part) => part.text).join("");
}
