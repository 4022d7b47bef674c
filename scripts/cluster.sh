#!/usr/bin/env bash
# N agentflow hosts behind nginx on this machine (deploy/README.md):
#   scripts/cluster.sh start [N] [--no-build]
#       builds as scripts/serve.sh does (scripts/build.sh; --no-build uses the
#       binary and plugins already built), starts hosts host-1..host-N on
#       127.0.0.1:18891.. with deploy/plugins.toml, and nginx on
#       127.0.0.1:$AGENTFLOW_CLUSTER_PORT (18880: 18890 is a single host's)
#   scripts/cluster.sh status   `agentflow cluster status` over the hosts
#   scripts/cluster.sh stop     drains the hosts (SIGTERM) and nginx, waits
# Each host's config, log, pid file, workspaces and rag index are in
# $AGENTFLOW_CLUSTER_DIR/host-N (default ${TMPDIR:-/tmp}/agentflow-cluster;
# not $XDG_RUNTIME_DIR: as root that is a 0700 directory the sandbox's user
# cannot pass through, and a small tmpfs). AGENTFLOW_TOKEN, when set, is
# every host's token. AGENTFLOW_CLUSTER_CONFIG replaces deploy/plugins.toml;
# AGENTFLOW_CLUSTER_READY_WAIT (seconds, default 300) bounds the wait for /ready.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)

state=${AGENTFLOW_CLUSTER_DIR:-${TMPDIR:-/tmp}/agentflow-cluster}
lb_port=${AGENTFLOW_CLUSTER_PORT:-18880}
first_port=18891
config=${AGENTFLOW_CLUSTER_CONFIG:-$repo/deploy/plugins.toml}
bin=$repo/target/release/agentflow
template=$repo/deploy/nginx/agentflow.conf.template
# deploy/plugins.toml's shutdown_grace (30 s) and time to destroy sessions.
stop_wait=45
ready_wait=${AGENTFLOW_CLUSTER_READY_WAIT:-300}

die() {
  echo "cluster: $*" >&2
  exit 1
}

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

find_nginx() {
  command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } ||
    die "nginx not found (scripts/setup.sh installs it)"
}

# Is $1 the pid of an agentflow host started from this repository? Checked
# before every signal: a pid file may outlive its process and the pid be reused.
is_host() {
  local args
  args=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
  [[ $args == "$bin serve "* ]]
}

# nginx's master, by the pid file the template names.
nginx_pid() {
  local pid
  pid=$(cat "$state/nginx/nginx.pid" 2>/dev/null) || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == nginx ]] && echo "$pid"
}

# Is $1 a live process (not gone, not a zombie left for this shell to reap)?
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

running() {
  local f
  for f in "$state"/host-*/agentflow.pid; do
    [ -e "$f" ] && is_host "$(cat "$f")" && return 0
  done
  nginx_pid >/dev/null
}

# nginx with this cluster's prefix, error log and config, plus "$@".
run_nginx() {
  local prefix=$state/nginx
  "$(find_nginx)" -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf" "$@"
}

# Escapes $1 for the right side of a sed s|...|...| command.
sed_escape() {
  printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'
}

start() {
  local n=3 build=1 arg
  for arg in "$@"; do
    case $arg in
      --no-build) build=0 ;;
      '' | *[!0-9]*) usage ;;
      *) n=$arg ;;
    esac
  done
  ((n >= 1)) || die "N must be at least 1"
  running && die "already running in $state (scripts/cluster.sh stop first)"
  if ((build)); then
    scripts/build.sh
  fi
  [ -x "$bin" ] || die "$bin is missing (run without --no-build)"
  [ -f "$config" ] || die "config $config is missing"
  find_nginx >/dev/null
  command -v curl >/dev/null || die "curl not found"

  mkdir -p "$state"
  state=$(cd "$state" && pwd -P)
  # Sandboxed processes (uid 65534 when run as root) pass through to workspaces.
  chmod 0755 "$state"
  # From here on a failure stops whatever was started.
  trap 'echo "cluster: start failed; stopping what was started" >&2; stop' EXIT

  local i port dir hosts=() upstreams=""
  for ((i = 1; i <= n; i++)); do
    port=$((first_port + i - 1))
    dir=$state/host-$i
    mkdir -p "$dir"
    chmod 0755 "$dir"
    # deploy/plugins.toml takes the node name, install and state directories
    # from the environment; the flags keep each host on loopback.
    HOSTNAME=host-$i AGENTFLOW_HOME=$repo AGENTFLOW_STATE=$dir \
      setsid "$bin" serve --config "$config" --host 127.0.0.1 --port "$port" \
      >"$dir/agentflow.log" 2>&1 </dev/null &
    echo $! >"$dir/agentflow.pid"
    hosts+=("http://127.0.0.1:$port")
    # One `server` line each; sed turns \n into a line break.
    upstreams+="${upstreams:+\\n        }server 127.0.0.1:$port;"
  done
  (IFS=,; echo "${hosts[*]}") >"$state/hosts"

  local prefix=$state/nginx
  mkdir -p "$prefix"
  # Placeholders are filled outside comments only (the comments name them).
  sed -e '/^[[:space:]]*#/!{' \
    -e "s|@PREFIX@|$(sed_escape "$prefix")|g" \
    -e "s|@LISTEN@|127.0.0.1:$lb_port|g" \
    -e "s|@UPSTREAMS@|$upstreams|" \
    -e '}' "$template" >"$prefix/nginx.conf"
  run_nginx -t -q
  run_nginx

  local deadline=$((SECONDS + ready_wait)) pid
  for ((i = 1; i <= n; i++)); do
    port=$((first_port + i - 1))
    dir=$state/host-$i
    pid=$(cat "$dir/agentflow.pid")
    # /ready needs no token.
    until curl -fs --max-time 2 -o /dev/null "http://127.0.0.1:$port/ready"; do
      if ! is_host "$pid"; then
        tail -n 20 "$dir/agentflow.log" >&2 || true
        die "host-$i exited (log: $dir/agentflow.log)"
      fi
      ((SECONDS < deadline)) || die "host-$i not ready after ${ready_wait}s (log: $dir/agentflow.log)"
      sleep 0.2
    done
  done
  # Through nginx too (/health needs no token).
  curl -fsS --max-time 5 -o /dev/null -H 'X-Worker-ID: cluster-sh' "http://127.0.0.1:$lb_port/health" ||
    die "nginx does not answer on 127.0.0.1:$lb_port (log: $prefix/error.log)"
  trap - EXIT

  echo "agentflow cluster: $n hosts behind nginx (state in $state)"
  echo "  balancer  http://127.0.0.1:$lb_port   (send X-Worker-ID: <worker> with every request)"
  for ((i = 1; i <= n; i++)); do
    echo "  host-$i    ${hosts[i - 1]}   log: $state/host-$i/agentflow.log"
  done
  echo "  status:   scripts/cluster.sh status"
  echo "            (= target/release/agentflow cluster status --hosts $(cat "$state/hosts"))"
  echo "  stop:     scripts/cluster.sh stop"
}

# The token, if any, reaches it as AGENTFLOW_TOKEN (kept out of argv).
status() {
  [ -f "$state/hosts" ] || die "no cluster in $state (scripts/cluster.sh start)"
  exec "$bin" cluster status --hosts "$(cat "$state/hosts")"
}

stop() {
  local f pid pids=()
  for f in "$state"/host-*/agentflow.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    if is_host "$pid"; then
      # The host drains: new work gets 503 + Retry-After, calls in flight
      # get shutdown_grace, sessions are destroyed, then it exits.
      kill -TERM "$pid"
      pids+=("$pid")
    fi
  done
  # nginx finishes the requests it is proxying before it exits.
  if pid=$(nginx_pid); then
    run_nginx -s quit || kill -QUIT "$pid"
    pids+=("$pid")
  fi
  local deadline=$((SECONDS + stop_wait))
  for pid in "${pids[@]}"; do
    while alive "$pid"; do
      if ((SECONDS >= deadline)); then
        # Its disks and cgroups are removed when the next host starts there.
        echo "cluster: pid $pid still running after ${stop_wait}s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
  done
  rm -f "$state"/host-*/agentflow.pid "$state/nginx/nginx.pid"
  echo "agentflow cluster stopped (${#pids[@]} processes)"
}

case ${1:-} in
  start) shift && start "$@" ;;
  status) status ;;
  stop) stop ;;
  *) usage ;;
esac
