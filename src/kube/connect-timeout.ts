// A connection to the API server that gets no answer is given up after a bound, not the OS's
// (about 2 minutes for a host that drops packets: `status` at 3 a.m. sat silent that long before
// saying the cluster was unreachable). client-go bounds its dial at 30 s; we bound the TCP connect
// and the TLS handshake together, per connection.
import { KubeConfig } from "@kubernetes/client-node";
import type { RequestContext } from "@kubernetes/client-node";
import { Agent as HttpAgent } from "node:http";
import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";

/** @default for KubeClient */
export const CONNECT_TIMEOUT_MS = 15_000;

type CreateConnection = (options: object, callback?: (error: Error | null, socket?: Socket) => void) => Socket | undefined;

/**
 * Makes each connection `agent` opens fail with a clear error when it is not established (connected,
 * and for TLS the handshake done) within `ms`. An agent that connects through a proxy returns no
 * socket at once (it tunnels first) and is left as it is.
 */
export function boundConnections(agent: unknown, ms: number, server: string): void {
  if (!(agent instanceof HttpAgent)) return;
  const connectable = agent as unknown as { createConnection: CreateConnection };
  const open = connectable.createConnection.bind(agent);
  connectable.createConnection = (options, callback) => {
    const socket = open(options, callback);
    if (socket === undefined) return socket;
    const timer = setTimeout(() => {
      socket.destroy(new Error(`no connection to ${server} within ${ms / 1000}s (the host does not answer)`));
    }, ms);
    timer.unref();
    const established = () => clearTimeout(timer);
    socket.once(socket instanceof TLSSocket ? "secureConnect" : "connect", established);
    socket.once("close", established);
    return socket;
  };
}

/** A KubeConfig whose every request (calls and watches) bounds its connection as above. */
export class BoundedKubeConfig extends KubeConfig {
  constructor(private readonly connectTimeoutMs: number) {
    super();
  }

  private server(): string {
    return this.getCurrentCluster()?.server ?? "the API server";
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    boundConnections(context.getAgent(), this.connectTimeoutMs, this.server());
  }

  override async applyToFetchOptions(
    opts: Parameters<KubeConfig["applyToFetchOptions"]>[0],
  ): ReturnType<KubeConfig["applyToFetchOptions"]> {
    const init = await super.applyToFetchOptions(opts);
    boundConnections(init.agent, this.connectTimeoutMs, this.server());
    return init;
  }
}
