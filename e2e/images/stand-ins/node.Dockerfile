# Stand-in for node:24-slim (no registry here): the Debian base plus the Node.js 24 binary
# of the npm package `node` and this machine's npm. Built by e2e/images/build.sh only.
ARG BASE
FROM $BASE
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version
# The machine's CA bundle (in the base image) for npm's HTTPS; only in this stand-in.
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
