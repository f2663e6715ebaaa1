// The tiny model's vocabulary: a llama.cpp SPM ("llama") tokenizer with byte fallback, Llama 3's
// control tokens (so the Llama 3 chat template tokenizes as it does on the real model) and a few
// hundred word pieces, so generated noise reads as words rather than raw bytes.

/** llama.cpp `llama_token_type` values stored in `tokenizer.ggml.token_type`. */
export const TokenType = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;
export type TokenType = (typeof TokenType)[keyof typeof TokenType];

export interface Vocabulary {
  readonly tokens: readonly string[];
  readonly scores: readonly number[];
  readonly types: readonly TokenType[];
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly eotId: number;
}

/** Llama 3's chat template (Meta-Llama-3-8B-Instruct), stored as `tokenizer.chat_template`. */
export const LLAMA3_CHAT_TEMPLATE =
  "{% set loop_messages = messages %}{% for message in loop_messages %}" +
  "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}" +
  "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

const SPACE = "\u2581"; // SentencePiece's visible space

const WORDS = [
  "the",
  "a",
  "an",
  "and",
  "or",
  "of",
  "to",
  "in",
  "on",
  "for",
  "with",
  "is",
  "are",
  "was",
  "be",
  "it",
  "this",
  "that",
  "model",
  "adapter",
  "token",
  "tokens",
  "llama",
  "lora",
  "weights",
  "noise",
  "random",
  "tiny",
  "test",
  "engine",
  "hello",
  "world",
  "cluster",
  "node",
  "pod",
  "gpu",
  "cpu",
  "serve",
  "request",
  "answer",
  "question",
  "user",
  "assistant",
  "system",
  "chat",
  "text",
  "code",
  "data",
  "query",
  "vector",
  "search",
  "small",
  "large",
  "fast",
  "slow",
  "good",
  "new",
  "old",
  "red",
  "blue",
  "green",
  "cat",
  "dog",
  "sun",
  "moon",
  "river",
  "stone",
  "tree",
  "light",
  "dark",
  "one",
  "two",
  "three",
  "yes",
  "no",
  "why",
  "how",
  "what",
  "when",
  "where",
  "who",
];

const CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;()\"";

export function buildVocabulary(): Vocabulary {
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: TokenType[] = [];
  const seen = new Set<string>();
  const add = (text: string, type: TokenType, score = 0): number => {
    if (seen.has(text)) return tokens.indexOf(text);
    seen.add(text);
    tokens.push(text);
    scores.push(score);
    types.push(type);
    return tokens.length - 1;
  };

  const unkId = add("<unk>", TokenType.unknown);
  add("<s>", TokenType.control);
  add("</s>", TokenType.control);
  for (let byte = 0; byte < 256; byte++) {
    add(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`, TokenType.byte);
  }
  const bosId = add("<|begin_of_text|>", TokenType.control);
  add("<|end_of_text|>", TokenType.control);
  add("<|start_header_id|>", TokenType.control);
  add("<|end_header_id|>", TokenType.control);
  const eotId = add("<|eot_id|>", TokenType.control);

  // SPM merges adjacent pieces pairwise, so every prefix of a word must itself be a piece;
  // longer pieces score higher so the tokenizer prefers them.
  add(SPACE, TokenType.normal, -1000);
  for (const ch of CHARS) add(ch, TokenType.normal, -900);
  for (const word of WORDS) {
    for (const piece of [word, SPACE + word]) {
      for (let end = 2; end <= piece.length; end++) add(piece.slice(0, end), TokenType.normal, -500 + end);
    }
  }
  return { tokens, scores, types, unkId, bosId, eosId: eotId, eotId };
}
