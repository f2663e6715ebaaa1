import type { Command } from "../command.ts";
import { renderCommand } from "./render.ts";

/** Every `diatonic` subcommand, in the order `diatonic --help` lists them. */
export const commands: readonly Command[] = [
  renderCommand,
];
