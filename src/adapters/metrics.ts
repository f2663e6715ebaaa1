// The adapter agent's Prometheus metrics: each adapter's state (what the alert rule watches), how
// long fetches and loads take (the swap cost the router weighs), and failures by stage.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { ADAPTER_STATES, type AgentEvents } from "./agent.ts";

// Seconds: a small LoRA loads in well under a second, a download of a large one takes minutes.
const SECONDS_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900];

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly state: Gauge<"adapter" | "state">;
  private readonly failures: Counter<"adapter" | "stage">;
  private readonly seconds: Histogram<"stage">;
  readonly engineUp: Gauge;

  constructor() {
    const registers = [this.registry];
    this.state = new Gauge({
      name: "diatonic_adapter_state",
      help: "1 for the state each adapter is in on this engine replica (loaded, loading, failed, unloaded).",
      labelNames: ["adapter", "state"],
      registers,
    });
    this.failures = new Counter({
      name: "diatonic_adapter_failures_total",
      help: "Failed fetches and loads of adapters, by stage.",
      labelNames: ["adapter", "stage"],
      registers,
    });
    this.seconds = new Histogram({
      name: "diatonic_adapter_load_seconds",
      help: "Time to fetch an adapter's files (stage fetch; 0 when cached) and to load them into the engine (stage load).",
      labelNames: ["stage"],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.engineUp = new Gauge({
      name: "diatonic_adapter_agent_engine_up",
      help: "1 when the engine beside the agent answers its model list.",
      registers,
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** The agent's events, recorded here. */
  readonly events: AgentEvents = {
    onState: (adapter, state) => {
      for (const each of ADAPTER_STATES) {
        if (state === undefined) this.state.remove({ adapter, state: each });
        else this.state.set({ adapter, state: each }, each === state ? 1 : 0);
      }
      if (state === undefined) for (const stage of ["fetch", "load"]) this.failures.remove({ adapter, stage });
    },
    onLoaded: (_adapter, fetchSeconds, loadSeconds) => {
      this.seconds.observe({ stage: "fetch" }, fetchSeconds);
      this.seconds.observe({ stage: "load" }, loadSeconds);
    },
    onFailure: (adapter, stage) => this.failures.inc({ adapter, stage }),
  };
}
