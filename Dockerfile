# syntax=docker/dockerfile:1
# modelwatch: the server and CLI (TypeScript run by tsx, a production dependency).
#
#   docker build -t modelwatch .
#   docker run -p 8080:8080 modelwatch            # serve models/diabetes on 0.0.0.0:8080
#   docker run modelwatch simulate --url http://host:8080 --requests 100
#
# onnxruntime-node is a glibc build, so the image is Debian (bookworm-slim), not Alpine.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- deps: production dependencies only -------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV NODE_ENV=production
# .npmrc carries onnxruntime-node-install=skip: the CPU binaries ship in the package and the
# install script must not download GPU providers during the build.
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime ------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    MODELWATCH_HOST=0.0.0.0 \
    MODELWATCH_PORT=8080 \
    MODELWATCH_CSV=/app/data/feature_log.csv

COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --chown=root:root package.json tsconfig.json ./
COPY --chown=root:root src ./src
COPY --chown=root:root models ./models

# The code is owned by root and read-only to the service; only the feature log directory is
# writable by the unprivileged user that runs it.
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME ["/app/data"]
USER node

EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.MODELWATCH_PORT || 8080) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["node", "--import", "tsx", "src/cli.ts"]
CMD ["serve"]
