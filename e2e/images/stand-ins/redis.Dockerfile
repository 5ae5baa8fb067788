# Stand-in for redis:7.0 (no registry here): the Debian base plus Debian's Redis 7.0.
ARG BASE
FROM $BASE
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null \
 && rm -rf /var/lib/apt/lists/* && redis-server --version
EXPOSE 6379
CMD ["redis-server"]
