# kube-proxy's base (upstream uses distroless-iptables): the Debian base with iptables,
# nftables, conntrack and ipset.
ARG BASE
FROM $BASE
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables nftables conntrack ipset kmod >/dev/null \
 && rm -rf /var/lib/apt/lists/*
