# syntax=docker/dockerfile:1
# One image for the operator and the worker. A stage installs the production dependencies; a
# build stage compiles the operator (operator/cmd/operator.ts and what it imports) to JavaScript
# with tsc (tsconfig.build.json, into dist/), so the operator process loads no type stripping
# (Node's is swc in WebAssembly, about 19 MiB of its RSS; docs/operator.md, "Memory"). The worker
# still runs its TypeScript sources natively. The runtime stage runs as non-root.
#   docker run IMAGE operator/cmd/worker.ts          # a worker (the default command)
#   docker run IMAGE dist/operator/cmd/operator.js   # the operator, built from operator/cmd/operator.ts

FROM node:24-slim AS deps
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# The dev dependency `node` (Node 24 for development) is not installed: the base image has it.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# All dependencies, for tsc and the type definitions; no install scripts (the dev dependency
# `node` would fetch a Node binary the base image already has).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY operator ./operator
RUN node_modules/.bin/tsc -p tsconfig.build.json

FROM node:24-slim AS runtime
# tini runs as PID 1 and forwards signals to node. The kernel drops a signal sent to a namespace's
# PID 1 that has no handler for it, so node as PID 1 ignored a SIGTERM that came before its
# handler was installed (a pod deleted while its container was starting ran out its whole grace
# period). Under tini, node is an ordinary process and gets every signal.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps --chown=10001:10001 /app/node_modules ./node_modules
COPY --chown=10001:10001 package.json ./
COPY --chown=10001:10001 operator ./operator
COPY --from=build --chown=10001:10001 /app/dist ./dist
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "node"]
CMD ["operator/cmd/worker.ts"]
