#!/usr/bin/env bash
# A private Docker daemon for tests/test_container_docker.py, on a machine that has a docker CLI
# but no daemon and no access to Docker Hub (only Debian's mirror and PyPI).
#
#   tools/docker_test_env.sh          install docker.io + debootstrap (if missing), start dockerd
#                                     (if not running), build the base image (if missing), then
#                                     print the DOCKER_HOST to use on stdout; logs go to stderr
#   tools/docker_test_env.sh --stop   stop that daemon (images stay in its data root)
#
# The base image modelrail-test-base:bookworm stands in for python:3.11-slim: Debian bookworm
# (debootstrap minbase) with Debian's Python 3.11 in a venv at /opt/python that is first on PATH,
# so `python` and `pip` work as in the official image, plus this host's CA bundle so pip inside
# reaches PyPI through a TLS-intercepting proxy. The root file system is cached as a tarball, so
# only the first run pays for debootstrap. Needs root. Settings (environment):
#   MODELRAIL_TEST_DOCKER_ROOT    data root, logs and cache   (/var/lib/modelrail-test-docker)
#   MODELRAIL_TEST_DOCKER_SOCKET  the daemon's socket         (/run/modelrail-test-docker.sock)
#   MODELRAIL_TEST_DOCKERD_ARGS   extra dockerd flags, e.g. "--storage-driver=vfs"
#   MODELRAIL_TEST_DEBIAN_MIRROR  debootstrap's mirror        (http://deb.debian.org/debian)
set -euo pipefail

ROOT=${MODELRAIL_TEST_DOCKER_ROOT:-/var/lib/modelrail-test-docker}
SOCKET=${MODELRAIL_TEST_DOCKER_SOCKET:-/run/modelrail-test-docker.sock}
EXEC_ROOT=/run/modelrail-test-docker
MIRROR=${MODELRAIL_TEST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
BASE_IMAGE=modelrail-test-base:$SUITE
HOST_CA=/etc/ssl/certs/ca-certificates.crt
RECIPE=1 # bump when the base image's recipe below changes: it invalidates the cached rootfs
PIDFILE=$ROOT/dockerd.pid
LOG=$ROOT/dockerd.log
export DOCKER_HOST=unix://$SOCKET

log() { echo "docker_test_env: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

daemon_up() { docker info >/dev/null 2>&1; }

stop_daemon() {
    if [[ -s $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        local pid
        pid=$(cat "$PIDFILE")
        log "stopping dockerd (pid $pid)"
        kill "$pid"
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 1
        done
        die "dockerd (pid $pid) did not stop within 30 s"
    fi
    log "no dockerd of ours is running"
}

if [[ ${1:-} == --stop ]]; then
    stop_daemon
    exit 0
elif [[ $# -gt 0 ]]; then
    die "usage: $0 [--stop]"
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, runs dockerd and debootstrap)"
command -v docker >/dev/null || die "no docker CLI on PATH"

# 1. Packages.
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
        die "apt-get install ${missing[*]} failed"
fi

# 2. The daemon: our own data root, exec root, socket and pid file, so it cannot collide with a
# system dockerd. The default bridge with iptables NAT gives containers (and RUN steps of
# `docker build`) the network they need to reach PyPI.
mkdir -p "$ROOT/data" "$ROOT/cache" "$EXEC_ROOT"
if daemon_up; then
    log "dockerd already answers on $DOCKER_HOST"
else
    if [[ -s $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        die "dockerd (pid $(cat "$PIDFILE")) runs but does not answer on $DOCKER_HOST; see $LOG"
    fi
    rm -f "$PIDFILE" "$SOCKET"
    # Veth pairs get the MTU of the uplink: a 1500-byte default above a smaller uplink MTU makes
    # TLS downloads hang.
    uplink=$(awk '$2 == "00000000" { print $1; exit }' /proc/net/route)
    mtu=$(cat "/sys/class/net/${uplink:-none}/mtu" 2>/dev/null || echo 1500)
    read -r -a extra <<<"${MODELRAIL_TEST_DOCKERD_ARGS:-}"
    log "starting dockerd (data root $ROOT/data, log $LOG, mtu $mtu)"
    # setsid: the daemon outlives this script and the CI step that ran it.
    setsid dockerd \
        --data-root "$ROOT/data" \
        --exec-root "$EXEC_ROOT" \
        --pidfile "$PIDFILE" \
        --host "$DOCKER_HOST" \
        --mtu "$mtu" \
        "${extra[@]}" \
        </dev/null >"$LOG" 2>&1 &
    for _ in $(seq 1 60); do
        daemon_up && break
        if ! kill -0 $! 2>/dev/null; then
            tail -n 30 "$LOG" >&2
            die "dockerd exited at start (log above, full log in $LOG)"
        fi
        sleep 1
    done
    daemon_up || {
        tail -n 30 "$LOG" >&2
        die "dockerd did not answer on $DOCKER_HOST within 60 s (full log in $LOG)"
    }
    log "dockerd is up: $(docker info --format '{{.ServerVersion}}, storage {{.Driver}}, cgroup {{.CgroupDriver}} v{{.CgroupVersion}}')"
fi

# 3. The base image. Its label records the recipe and the CA bundle baked into it.
key="$RECIPE-$(sha256sum "$HOST_CA" | cut -c1-12)"
tarball=$ROOT/cache/rootfs-$SUITE-$key.tar
label=$(docker image inspect --format '{{index .Config.Labels "org.modelrail.test-base"}}' \
    "$BASE_IMAGE" 2>/dev/null || true)
if [[ $label == "$key" ]]; then
    log "$BASE_IMAGE is present"
else
    if [[ ! -s $tarball ]]; then
        rootfs=$ROOT/build/rootfs
        rm -rf "$ROOT/build"
        mkdir -p "$ROOT/build" "$ROOT/cache/debs"
        trap 'rm -rf "$ROOT/build"' EXIT
        log "debootstrap $SUITE from $MIRROR (log $ROOT/debootstrap.log)"
        debootstrap --variant=minbase --cache-dir="$ROOT/cache/debs" \
            --include=python3,python3-pip,python3-venv,ca-certificates,passwd \
            "$SUITE" "$rootfs" "$MIRROR" >"$ROOT/debootstrap.log" 2>&1 || {
            tail -n 20 "$ROOT/debootstrap.log" >&2
            die "debootstrap failed (full log in $ROOT/debootstrap.log)"
        }
        cp "$HOST_CA" "$rootfs/etc/ssl/certs/ca-certificates.crt"
        # A venv first on PATH: `python` and `pip` resolve as in python:3.11-slim, and pip
        # installs there without touching Debian's packages (no PEP 668 refusal).
        chroot "$rootfs" /usr/bin/python3 -m venv /opt/python >&2 ||
            die "creating the venv in the image failed"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
            "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
        log "caching the root file system as $tarball"
        rm -f "$ROOT"/cache/rootfs-"$SUITE"-*.tar
        tar --numeric-owner -C "$rootfs" -cf "$tarball.part" .
        mv "$tarball.part" "$tarball"
        rm -rf "$ROOT/build"
        trap - EXIT
    fi
    changes=(
        --change "LABEL org.modelrail.test-base=$key"
        --change "ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        --change "ENV LANG=C.UTF-8"
        --change "ENV PIP_CERT=$HOST_CA"
        --change "ENV SSL_CERT_FILE=$HOST_CA"
        --change "ENV REQUESTS_CA_BUNDLE=$HOST_CA"
        --change "ENV PIP_DEFAULT_TIMEOUT=${PIP_DEFAULT_TIMEOUT:-180}"
        --change 'CMD ["python"]'
    )
    # An HTTP(S) package index the host's pip is told to use applies inside as well; local
    # file:// indexes and find-links do not exist in the image.
    for name in PIP_INDEX_URL PIP_TRUSTED_HOST; do
        value=${!name:-}
        if [[ -n $value && $value != file:* ]]; then
            changes+=(--change "ENV $name=$value")
        fi
    done
    log "importing $BASE_IMAGE from $tarball"
    docker import "${changes[@]}" "$tarball" "$BASE_IMAGE" >/dev/null ||
        die "docker import of $tarball failed"
fi

# 4. The check the tests depend on: a container reaches PyPI over the default network.
probe='import urllib.request; urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=30)'
if ! out=$(docker run --rm "$BASE_IMAGE" python -c "$probe" 2>&1); then
    echo "$out" >&2
    die "a container from $BASE_IMAGE cannot reach https://pypi.org (output above)"
fi

echo "$DOCKER_HOST"
