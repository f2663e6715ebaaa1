import type { Command } from "../command.ts";
import { applyCommand, destroyCommand, diffCommand, rollbackCommand, statusCommand } from "./deploy.ts";
import { devCommand } from "./dev.ts";
import { engineCommand } from "./engine.ts";
import { gatewayCommand } from "./gateway.ts";
import { ingestCommand } from "./ingest.ts";
import { modelDownloadCommand } from "./model-download.ts";
import { planCommand } from "./plan.ts";
import { quickstartCommand } from "./quickstart.ts";
import { renderCommand } from "./render.ts";
import { schemaCommand } from "./schema.ts";
import { validateCommand } from "./validate.ts";

/** Every `diatonic` subcommand, in the order `diatonic --help` lists them. */
export const commands: readonly Command[] = [
  quickstartCommand,
  renderCommand,
  validateCommand,
  planCommand,
  applyCommand,
  diffCommand,
  statusCommand,
  rollbackCommand,
  destroyCommand,
  schemaCommand,
  modelDownloadCommand,
  engineCommand,
  gatewayCommand,
  ingestCommand,
  devCommand,
];
