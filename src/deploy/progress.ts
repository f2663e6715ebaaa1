import type { PreflightCheck } from "./preflight.ts";

/** Everything a deploy reports, in order; `--output json` writes each as one line. */
export type DeployEvent =
  | { readonly type: "preflight"; readonly checks: readonly PreflightCheck[] }
  | { readonly type: "phase-start"; readonly phase: string; readonly title: string; readonly objects: number }
  | { readonly type: "applied"; readonly phase: string; readonly resource: string; readonly action: "created" | "configured" | "unchanged" }
  | { readonly type: "readiness"; readonly phase: string; readonly resource: string; readonly state: string; readonly reason: string }
  | { readonly type: "phase-done"; readonly phase: string; readonly seconds: number; readonly changed: number }
  | { readonly type: "phase-failed"; readonly phase: string; readonly seconds: number; readonly message: string }
  /** kept: volumes and namespaces (data), or a shared object nobody could tell is unused (`why`); handedTo: a shared object left to the platform in that namespace. */
  | { readonly type: "pruned"; readonly resource: string; readonly kept?: boolean; readonly handedTo?: string; readonly why?: string }
  | {
      readonly type: "done";
      readonly revision: number | null;
      readonly changed: number;
      readonly pruned: number;
      readonly seconds: number;
      readonly dryRun: boolean;
    };

export interface Reporter {
  event(event: DeployEvent): void;
  close(): void;
}

export function jsonReporter(out: NodeJS.WritableStream): Reporter {
  return {
    event: (event) => out.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`),
    close: () => undefined,
  };
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/**
 * One line per phase. In a terminal the current phase's line shows a spinner, a timer and what it
 * waits for, rewritten in place; elsewhere (CI, pipes) every line is printed once, plainly.
 */
export function humanReporter(out: NodeJS.WritableStream & { isTTY?: boolean }): Reporter {
  const tty = out.isTTY === true && process.env["CI"] !== "true";
  let current: { phase: string; title: string; started: number; waiting: string } | undefined;
  let frame = 0;
  let timer: NodeJS.Timeout | undefined;
  const redraw = () => {
    if (!current) return;
    const seconds = ((Date.now() - current.started) / 1000).toFixed(0);
    out.write(
      `\r\u001b[2K${SPINNER[frame++ % SPINNER.length] ?? ""} ${current.phase.padEnd(12)} ${current.title} ${seconds}s${current.waiting ? ` — ${current.waiting}` : ""}`,
    );
  };
  const endLine = (text: string) => {
    if (tty) out.write(`\r\u001b[2K`);
    out.write(`${text}\n`);
  };
  return {
    event(event) {
      switch (event.type) {
        case "preflight":
          for (const c of event.checks)
            out.write(
              `${c.ok ? (c.warning ? "!" : "✓") : "✗"} preflight ${c.check}: ${c.message}${c.ok && !c.warning ? "" : c.fix ? `\n    fix: ${c.fix}` : ""}\n`,
            );
          break;
        case "phase-start":
          current = { phase: event.phase, title: event.title, started: Date.now(), waiting: "" };
          if (tty) {
            timer = setInterval(redraw, 100);
            redraw();
          } else out.write(`… ${event.phase.padEnd(12)} ${event.title} (${event.objects} objects)\n`);
          break;
        case "readiness":
          if (current && event.state !== "ready") current.waiting = `${event.resource}: ${event.reason}`;
          if (!tty && event.state !== "ready") out.write(`    waiting: ${event.resource}: ${event.reason}\n`);
          break;
        case "phase-done":
          if (timer) clearInterval(timer);
          endLine(
            `✓ ${event.phase.padEnd(12)} ${current?.title ?? ""} ${event.seconds.toFixed(1)}s${event.changed > 0 ? `, ${event.changed} changed` : ", unchanged"}`,
          );
          current = undefined;
          break;
        case "phase-failed":
          if (timer) clearInterval(timer);
          endLine(`✗ ${event.phase.padEnd(12)} ${current?.title ?? ""} ${event.seconds.toFixed(1)}s`);
          current = undefined;
          break;
        case "pruned":
          out.write(
            event.handedTo !== undefined
              ? `  handed over ${event.resource} to the platform in namespace ${event.handedTo} (it renders it too)\n`
              : `${event.kept ? `  kept (${event.why ?? "data"})` : "  pruned"} ${event.resource}\n`,
          );
          break;
        case "applied":
          break;
        case "done":
          out.write(
            event.dryRun
              ? `dry run: ${event.changed} object(s) would change, ${event.pruned} would be pruned\n`
              : event.changed === 0 && event.pruned === 0
                ? `no changes: the cluster already matches the spec (${event.seconds.toFixed(1)}s)\n`
                : `applied revision ${event.revision ?? "?"}: ${event.changed} object(s) changed, ${event.pruned} pruned in ${event.seconds.toFixed(1)}s\n`,
          );
          break;
      }
    },
    close() {
      if (timer) clearInterval(timer);
    },
  };
}
