# syntax=docker/dockerfile:1
# One image for the operator and the worker. Node 24 runs the TypeScript sources natively
# (type stripping), so there is no build step: a build stage installs the production
# dependencies, the runtime stage copies them with the sources and runs as non-root.
#   docker run IMAGE operator/cmd/worker.ts     # a worker (the default command)
#   docker run IMAGE operator/cmd/operator.ts   # the operator

FROM node:24-slim AS deps
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# The dev dependency `node` (Node 24 for development) is not installed: the base image has it.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

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
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "node"]
CMD ["operator/cmd/worker.ts"]
