# kind's node base image, built here (kind's own base downloads containerd, runc, crictl and
# the CNI plugins from GitHub, which cannot be reached): the Debian base image, kind's node
# files (images/base/files of the kind module, copied into the build context by
# e2e/kind/node-image.sh), and Debian's containerd, runc and CNI plugins.
ARG BASE
FROM $BASE
# containerd's restrict_oom_score_adj: the node lacks CAP_SYS_RESOURCE (this machine's bounding
# set has none to give), so a negative oom_score_adj (-998 for pod sandboxes) fails in runc
# ("can't get final child's PID from pipe: EOF"); clamped to containerd's own, it does not.
# Packages first: kind's files replace some of their configuration (containerd's config.toml).
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      systemd systemd-sysv dbus conntrack iptables nftables iproute2 ethtool util-linux mount kmod \
      libseccomp2 pigz bash ca-certificates curl jq procps \
      containerd runc containernetworking-plugins >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY files/ /
RUN chmod 0755 /kind /kind/bin /kind/bin/* /usr/local/bin/* \
 && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \
 && rm -f /lib/systemd/system/multi-user.target.wants/* \
 && rm -f /etc/systemd/system/*.wants/* \
 && rm -f /lib/systemd/system/local-fs.target.wants/* \
 && rm -f /lib/systemd/system/sockets.target.wants/*udev* \
 && rm -f /lib/systemd/system/sockets.target.wants/*initctl* \
 && rm -f /lib/systemd/system/basic.target.wants/* \
 && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \
 && ln -sf /usr/lib/systemd/systemd /sbin/init \
 && ln -s /usr/bin/containerd /usr/local/bin/containerd \
 && mkdir -p /opt/cni/bin /etc/kubernetes/manifests \
 && ln -s /usr/lib/cni/* /opt/cni/bin/ \
 && sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml \
 && grep -q 'restrict_oom_score_adj = true' /etc/containerd/config.toml \
 && ctr oci spec \
      | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
      | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \
 && systemctl mask systemd-binfmt.service \
 && containerd --version && runc --version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]
