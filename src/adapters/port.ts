/** The adapter agent's port in the engine pod (GET /status, /metrics). */
export const AGENT_PORT = 8001;
