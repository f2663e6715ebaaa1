// Splits a V8 CPU profile (a .cpuprofile file from `node --cpu-prof`) by where the time went: the
// server's own code, Node and its libraries, system-call writes, garbage collection, idle.
// Used by `npm run bench:gateway:profile`.

export interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

export interface CpuProfile {
  readonly nodes: readonly { readonly id: number; readonly callFrame: CallFrame; readonly children?: readonly number[] }[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export const CATEGORIES = [
  "own code",
  "Node and libraries",
  "socket and file writes",
  "garbage collection",
  "V8 (program)",
  "start-up",
  "idle",
] as const;
export type Category = (typeof CATEGORIES)[number];

export interface Breakdown {
  /** Microseconds per category. */
  readonly categories: Record<Category, number>;
  /** Own code by function (self time, builtins it calls such as JSON.parse included), largest first. */
  readonly ownFunctions: readonly { readonly name: string; readonly us: number }[];
}

/** Native functions that write to a socket or a file: their time is the system call's. */
const WRITES = new Set([
  "writev",
  "writeBuffer",
  "writeString",
  "writeUtf8String",
  "writeLatin1String",
  "writeAsciiString",
  "writeUcs2String",
]);
const LOADING = /^node:internal\/modules\//;

function frameName(frame: CallFrame): string {
  const file = frame.url.split("/").slice(-2).join("/");
  return `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`;
}

/**
 * Where the sampled time went. A sample is start-up when any frame on its stack loads modules; else
 * it belongs to its innermost frame: own code when `isOwn(url)` holds for that frame's script.
 */
export function breakdown(profile: CpuProfile, isOwn: (url: string) => boolean): Breakdown {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const categories = Object.fromEntries(CATEGORIES.map((category) => [category, 0])) as Record<Category, number>;
  const own = new Map<string, number>();
  const loading = new Map<number, boolean>();
  const isLoading = (id: number): boolean => {
    const known = loading.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id);
    const up = parent.get(id);
    const result = node !== undefined && (LOADING.test(node.callFrame.url) || (up !== undefined && isLoading(up)));
    loading.set(id, result);
    return result;
  };
  profile.samples.forEach((id, index) => {
    const us = profile.timeDeltas[index] ?? 0;
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) return;
    let category: Category;
    if (frame.functionName === "(idle)") category = "idle";
    else if (frame.functionName === "(garbage collector)") category = "garbage collection";
    else if (frame.functionName === "(program)") category = "V8 (program)";
    else if (isLoading(id)) category = "start-up";
    else if (frame.url === "" && WRITES.has(frame.functionName)) category = "socket and file writes";
    else if (isOwn(frame.url)) {
      category = "own code";
      const name = frameName(frame);
      own.set(name, (own.get(name) ?? 0) + us);
    } else category = "Node and libraries";
    categories[category] += us;
  });
  const ownFunctions = [...own].map(([name, us]) => ({ name, us })).sort((a, b) => b.us - a.us);
  return { categories, ownFunctions };
}
