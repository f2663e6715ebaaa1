// `--timeout` of apply, rollback and destroy: a duration, refused with the fix when it is not one.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDuration } from "../../src/cli/commands/deploy.ts";
import { InputError } from "../../src/errors.ts";

describe("--timeout durations", () => {
  it("reads units and sums their parts", () => {
    assert.equal(parseDuration("90s"), 90_000);
    assert.equal(parseDuration("1h30m"), 5_400_000);
    assert.equal(parseDuration("1.5m"), 90_000);
    assert.equal(parseDuration("250ms"), 250);
    assert.equal(parseDuration("24h"), 86_400_000);
  });

  it("refuses what is not a duration, zero, and more than a day (Node's timers would fire at once past 24.8 days)", () => {
    for (const [text, problem] of [
      ["90", /is not a duration/],
      ["15 m", /is not a duration/],
      ["1d", /is not a duration/],
      ["0s", /out of range/],
      ["25h", /out of range/],
      ["1000h", /out of range/],
    ] as const) {
      assert.throws(
        () => parseDuration(text),
        (error: Error) => error instanceof InputError && problem.test(error.message) && error.message.includes(JSON.stringify(text)),
        text,
      );
    }
  });
});
