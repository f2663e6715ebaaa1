import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseDockerfile } from "../../scripts/image/dockerfile.ts";

describe("parseDockerfile (the dry build's reader)", () => {
  it("joins continued lines, drops comments (inside continuations too) and keeps each instruction's first line", () => {
    const parsed = parseDockerfile(
      [
        "# a comment",
        "FROM node:20.19-slim AS build",
        "",
        "WORKDIR /app",
        "RUN npm ci \\",
        "# a comment inside",
        " && npx tsc \\",
        "    -p tsconfig.build.json",
        "COPY --from=build /app/dist ./dist",
        'ENV NODE_ENV=production HOME="/home/engine"',
        "ENV LEGACY value",
        "USER 1000:1000",
        "EXPOSE 8000",
        'HEALTHCHECK --interval=30s CMD node -e "process.exit(0)"',
        'ENTRYPOINT ["node", "bin/diatonic.js"]',
        "CMD engine --model /models/model.gguf",
      ].join("\n"),
    );
    assert.deepEqual(parsed, [
      { line: 2, kind: "FROM", image: "node:20.19-slim", stage: "build" },
      { line: 4, kind: "WORKDIR", path: "/app" },
      { line: 5, kind: "RUN", command: ["/bin/sh", "-c", "npm ci && npx tsc -p tsconfig.build.json"] },
      { line: 9, kind: "COPY", from: "build", sources: ["/app/dist"], dest: "./dist" },
      { line: 10, kind: "ENV", values: { NODE_ENV: "production", HOME: "/home/engine" } },
      { line: 11, kind: "ENV", values: { LEGACY: "value" } },
      { line: 12, kind: "USER", user: "1000:1000" },
      { line: 13, kind: "EXPOSE", ports: ["8000"] },
      { line: 14, kind: "HEALTHCHECK", options: ["--interval=30s"], command: ["/bin/sh", "-c", 'node -e "process.exit(0)"'] },
      { line: 15, kind: "ENTRYPOINT", command: ["node", "bin/diatonic.js"] },
      { line: 16, kind: "CMD", command: ["/bin/sh", "-c", "engine --model /models/model.gguf"] },
    ]);
  });

  it("reads both of our Dockerfiles", () => {
    for (const name of ["gateway", "engine"]) {
      const file = `docker/${name}.Dockerfile`;
      const parsed = parseDockerfile(readFileSync(file, "utf8"), file);
      assert.equal(parsed.filter((instruction) => instruction.kind === "FROM").length, 2, file);
      const users = parsed.flatMap((instruction) => (instruction.kind === "USER" ? [instruction.user] : []));
      assert.deepEqual(users, ["1000:1000"], `${file} runs as the pods' runAsUser`);
    }
  });

  const bad: [string, string, RegExp | { name: string; message: string }][] = [
    [
      "an instruction outside the subset, with its line",
      "FROM node:20\nARG VERSION",
      { name: "DockerfileError", message: "Dockerfile:2: ARG is not supported by the dry build" },
    ],
    ["a relative WORKDIR", "FROM node:20\nWORKDIR app", /:2: WORKDIR must be an absolute path/],
    ["a COPY wildcard", "FROM node:20\nCOPY package*.json ./", /:2: COPY package\*\.json: wildcards are not supported/],
    ["a COPY flag it does not honour", "FROM node:20\nCOPY --chown=1000 a b", /:2: COPY --chown=1000 is not supported/],
    ["a broken exec form", 'FROM node:20\nCMD ["node", 1]', /:2: CMD: the exec form must be a JSON array of strings/],
    ["ENV without a value", "FROM node:20\nENV A=1 B", /:2: ENV B is not KEY=VALUE/],
  ];
  for (const [name, text, message] of bad) {
    it(`refuses ${name}`, () => assert.throws(() => parseDockerfile(text), message));
  }
});
