# Stand-in for python:3.11-slim (no registry here): the Debian base plus Debian's Python 3.11
# and pip, laid out like the official image (python, pip on PATH; pip may install packages).
ARG BASE
FROM $BASE
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-pip python3-venv >/dev/null \
 && rm -rf /var/lib/apt/lists/* /usr/lib/python3*/EXTERNALLY-MANAGED \
 && ln -s /usr/bin/python3 /usr/local/bin/python && ln -s /usr/bin/pip3 /usr/local/bin/pip \
 && python --version
# The machine's CA bundle (in the base image) for pip's HTTPS; only in this stand-in.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
