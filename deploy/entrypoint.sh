#!/bin/sh
# The container's entrypoint (under tini): fits a privileged container to what
# the session sandbox needs (sandbox/src/lib.rs, "What the host needs"), then
# becomes `agentflow serve "$@"`. Each step acts only where it is needed, so
# one image runs on cgroup v1 and v2 nodes; a step that cannot act (not
# privileged) warns, and the plugins' warmup then names what is missing.
# Not yet tested in a container (deploy/README.md).
set -eu

warn() { echo "agentflow-entrypoint: $*" >&2; }

state=${AGENTFLOW_STATE:-/var/lib/agentflow}
mkdir -p "$state"
# Sandboxed processes run as uid 65534 and must pass through to workspaces.
chmod 0755 "$state"

if [ "$(id -u)" = 0 ]; then
  # cgroup v2 with a cgroup namespace of its own (Docker's and Kubernetes'
  # default): this container's group is "/" and holds our processes, so no
  # controller can be enabled below it ("no internal processes"). Move them
  # into a leaf; session groups then go beside it (sandbox/src/cgroup.rs).
  if [ -f /sys/fs/cgroup/cgroup.controllers ] && [ "$(cat /proc/self/cgroup)" = "0::/" ]; then
    if mkdir -p /sys/fs/cgroup/agentflow-server 2>/dev/null; then
      while read -r pid; do
        echo "$pid" >/sys/fs/cgroup/agentflow-server/cgroup.procs 2>/dev/null || true
      done </sys/fs/cgroup/cgroup.procs
    else
      warn "cannot write /sys/fs/cgroup (not privileged?): session cgroups will fail"
    fi
  fi

  # Session disks are loop devices. A container's /dev is a copy made at its
  # start, so loop devices the kernel adds later have no node here and
  # mount(8) cannot open them: make the nodes ahead (block major 7).
  i=0
  while [ "$i" -lt "${AGENTFLOW_LOOP_DEVICES:-512}" ]; do
    [ -e "/dev/loop$i" ] || mknod -m 0660 "/dev/loop$i" b 7 "$i" 2>/dev/null || true
    i=$((i + 1))
  done

  # Sessions' writable layers sit on idmapped views of /usr and /opt
  # (sandbox/src/layers.rs), and overlayfs, the image's root filesystem,
  # cannot be idmapped. Copy both onto the state volume (the node's own
  # filesystem) and bind the copies over them.
  if [ "$(stat -f -c %T /usr)" = overlayfs ]; then
    if [ "$(stat -f -c %T "$state")" = overlayfs ]; then
      warn "$state is not a volume: bash and vm warmup will fail (mount a volume there)"
    else
      for d in usr opt; do
        {
          rm -rf "${state:?}/base/$d" &&
            mkdir -p "$state/base/$d" &&
            cp -a "/$d/." "$state/base/$d/" &&
            mount --bind "$state/base/$d" "/$d" &&
            mount -o remount,bind,ro "/$d"
        } || warn "cannot put a copy of /$d on $state (not privileged?): bash and vm warmup will fail"
      done
    fi
  fi
fi

exec "${AGENTFLOW_HOME:-/srv/agentflow}/bin/agentflow" serve "$@"
