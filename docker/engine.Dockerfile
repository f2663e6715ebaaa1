# The local engine: `diatonic engine`, vLLM's API on llama.cpp (CPU only), for clusters without a GPU.
# The rendered `local` manifests run it as: engine --model /models/... --host 0.0.0.0 --port 8000
# --parallel N. Every engine pod (vLLM's too) also runs this image's `model-download` (an init
# container) and `adapter-agent` (the sidecar that loads LoRAs at runtime). Non-root (uid 1000, as the pod's securityContext expects), compiled
# JavaScript only, read-only root filesystem friendly (nothing is written at run time).
# Build from the repository root: docker build -f docker/engine.Dockerfile -t diatonic/engine .
#
# Debian slim, not Alpine: node-llama-cpp's prebuilt binaries are built against glibc.
FROM node:20.19-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: llama.cpp comes prebuilt in the optional package @node-llama-cpp/linux-<arch>;
# node-llama-cpp's own postinstall (which may try to download sources and build) is not wanted.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/image/keep-only.mjs ./scripts/image/
# keep-only: only the packages the engine's, the download's and the agent's code load (no vector
# stores, no Kubernetes client, no tsx); of llama.cpp's prebuilt binaries only the CPU ones
# (TypeScript is an optional peer of it).
RUN npx tsc -p tsconfig.build.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && node scripts/image/keep-only.mjs engine model-download adapter-agent --drop typescript \
 && rm -rf node_modules/node-llama-cpp/llama/gitRelease.bundle \
      node_modules/@node-llama-cpp/*-cuda* node_modules/@node-llama-cpp/*-vulkan \
      node_modules/@node-llama-cpp/linux-armv7l node_modules/@node-llama-cpp/linux-riscv64 \
 && node -e "import('node-llama-cpp').then(m => m.getLlama({ gpu: false, build: 'never', skipDownload: true })).then(l => console.log('llama.cpp binary:', l.buildType, l.cpuMathCores, 'cores'))"

FROM node:20.19-slim
ENV NODE_ENV=production DIATONIC_USE_DIST=1 HOME=/home/engine
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
RUN mkdir -p /home/engine /models && chown 1000:1000 /home/engine
USER 1000:1000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=5m CMD node -e "fetch('http://127.0.0.1:8000/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
ENTRYPOINT ["node", "bin/diatonic.js"]
CMD ["engine", "--model", "/models/model.gguf", "--host", "0.0.0.0", "--port", "8000"]
