# syntax=docker/dockerfile:1
# modelwatch: the server and CLI, compiled to JavaScript in a build stage.
#
#   docker build -t modelwatch .
#   docker run -p 8080:8080 modelwatch            # serve models/diabetes on 0.0.0.0:8080
#   docker run modelwatch simulate --url http://host:8080 --requests 100
#
# onnxruntime-node is a glibc build, so the image is Debian (bookworm-slim), not Alpine.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: TypeScript to dist/ ------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
# --ignore-scripts: no dependency needs its install script to compile (onnxruntime-node's only
# downloads GPU providers), and prepare would build before src/ is copied.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npm run build

# ---- deps: production dependencies only -------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# The CPU binaries ship in onnxruntime-node; its install script would only download the CUDA
# providers, and prepare needs the dev dependencies. The macOS and Windows binaries (about 220 MB)
# never run in this Linux image.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/onnxruntime-node/bin/napi-v6/darwin node_modules/onnxruntime-node/bin/napi-v6/win32 \
 && npm cache clean --force

# ---- runtime ------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    MODELWATCH_HOST=0.0.0.0 \
    MODELWATCH_PORT=8080 \
    MODELWATCH_CSV=/app/data/feature_log.csv

COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --chown=root:root package.json ./
COPY --chown=root:root bin ./bin
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root models ./models
# GET /prometheus/RUNBOOK.md serves it: every alert's runbook_url can point at the server itself.
COPY --chown=root:root prometheus/RUNBOOK.md ./prometheus/RUNBOOK.md

# The code is owned by root and read-only to the service; only the feature log directory is
# writable by the unprivileged user that runs it.
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME ["/app/data"]
USER node

EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.MODELWATCH_PORT || 8080) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["node", "bin/modelwatch.js"]
CMD ["serve"]
