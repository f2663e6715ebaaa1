// The CPU profile split behind `npm run bench:gateway:profile`, on a small made-up profile.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { breakdown, type CpuProfile } from "../../bench/cpu-profile.ts";

const frame = (functionName: string, url = "", lineNumber = 0) => ({ functionName, url, lineNumber });

// root ─┬─ (idle) 2
//       ├─ (garbage collector) 3
//       ├─ handle dist/gateway/server.js ─┬─ JSON-ish self ........ 4
//       │                                 └─ end node:_http_outgoing ─ writev (native) 5
//       ├─ emit node:events ─ record dist/gateway/server.js .......... 6
//       └─ loadESM node:internal/modules/esm/loader ─ top dist/x.js .. 7
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame("(root)"), children: [2, 3, 4, 6, 8] },
    { id: 2, callFrame: frame("(idle)") },
    { id: 3, callFrame: frame("(garbage collector)") },
    { id: 4, callFrame: frame("handle", "file:///app/dist/gateway/server.js", 9), children: [5] },
    { id: 5, callFrame: frame("end", "node:_http_outgoing"), children: [10] },
    { id: 10, callFrame: frame("writev") },
    { id: 6, callFrame: frame("emit", "node:events"), children: [7] },
    { id: 7, callFrame: frame("record", "file:///app/dist/gateway/server.js", 41) },
    { id: 8, callFrame: frame("loadESM", "node:internal/modules/esm/loader"), children: [9] },
    { id: 9, callFrame: frame("top", "file:///app/dist/x.js") },
  ],
  samples: [2, 3, 4, 4, 5, 10, 6, 7, 7, 9],
  timeDeltas: [100, 30, 10, 10, 7, 50, 3, 20, 20, 500],
};

describe("CPU profile breakdown", () => {
  it("puts each sample in one category by its innermost frame, start-up by any frame that loads modules", () => {
    const split = breakdown(profile, (url) => url.includes("/dist/"));
    assert.deepEqual(split.categories, {
      "own code": 60,
      "Node and libraries": 10,
      "socket and file writes": 50,
      "garbage collection": 30,
      "V8 (program)": 0,
      "start-up": 500,
      idle: 100,
    });
    assert.deepEqual(split.ownFunctions, [
      { name: "record gateway/server.js:42", us: 40 },
      { name: "handle gateway/server.js:10", us: 20 },
    ]);
  });

  it("own code is whatever the caller says it is", () => {
    const split = breakdown(profile, () => false);
    assert.equal(split.categories["own code"], 0);
    assert.equal(split.categories["Node and libraries"], 70);
    assert.deepEqual(split.ownFunctions, []);
  });
});
