# The adapter gateway: `diatonic gateway --config /etc/diatonic/gateway/config.yaml`, as the rendered
# Deployment runs it (args: gateway --config ... --port 8080), non-root (uid 1000, as the pod's
# securityContext expects), compiled JavaScript, no dev dependencies and no llama.cpp binaries; with
# the web console it serves at /console/, built here (esbuild, a dev dependency) into console/dist.
# Build from the repository root: docker build -f docker/gateway.Dockerfile -t diatonic/gateway .
# Debian slim rather than Alpine: the RAG module's LanceDB store ships glibc binaries only.
FROM node:20.19-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: nothing the gateway uses needs an install script (node-llama-cpp's fetches binaries).
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY console ./console
COPY scripts/console/build.ts ./scripts/console/
COPY scripts/image/keep-only.mjs ./scripts/image/
# keep-only: only the packages the gateway's code loads (no llama.cpp, no Kubernetes client, no tsx).
# Dropped: LanceDB's optional embedding functions (with onnxruntime and sharp; embeddings come from
# the engine or TEI) and TypeScript (a peer of the Qdrant client for its types only).
RUN npx tsc -p tsconfig.build.json \
 && node --import tsx scripts/console/build.ts \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && node scripts/image/keep-only.mjs gateway --drop @huggingface/transformers --drop typescript

FROM node:20.19-bookworm-slim
ENV NODE_ENV=production DIATONIC_USE_DIST=1
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/console/dist ./console/dist
COPY package.json ./
COPY bin ./bin
USER 1000:1000
EXPOSE 8080
ENTRYPOINT ["node", "bin/diatonic.js"]
CMD ["gateway", "--config", "/etc/diatonic/gateway/config.yaml", "--port", "8080"]
