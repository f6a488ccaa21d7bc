#!/usr/bin/env bash
# Makes sure the PostgreSQL and Redis that `make test`, `make demo` and `make bench` use are up.
#
# Idempotent and silent when both already answer. A server that is down is started with the
# Debian tools; when those are missing they are installed with apt-get if we are root,
# otherwise the script says what is missing and how to point touchline at other servers.
# The servers are the ones DATABASE_URL and REDIS_URL name (the Makefile passes the binary's
# TOUCHLINE_ URLs in these for the demo); servers named by a URL other than the local default
# ports are somebody else's to run and are left alone.
#
# With --create-database, the database named by the PostgreSQL URL is created when missing
# (the binary expects its database to exist; the tests make their own).
set -euo pipefail

create_database=false
for arg in "$@"; do
    case $arg in
        --create-database) create_database=true ;;
        *) echo "usage: $0 [--create-database]" >&2; exit 2 ;;
    esac
done

# How long to wait for a server that was just started, in seconds.
WAIT_SECS=${TOUCHLINE_SERVICES_WAIT_SECS:-60}

DB_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
CACHE_URL=${REDIS_URL:-redis://127.0.0.1:6379}

say() { echo "services: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# Prints "host:port" of a URL such as postgres://user:pw@host:5432/db (port defaults to $2).
host_port() {
    local rest=${1#*://}
    rest=${rest%%[/?]*}
    rest=${rest##*@}
    local host=${rest%:*} port=${rest##*:}
    [[ $rest == *:* ]] || { host=$rest; port=$2; }
    echo "${host:-127.0.0.1}:${port:-$2}"
}

# True when the URL names the local default server this script manages.
is_local_default() {
    case $(host_port "$1" "$2") in
        "127.0.0.1:$2" | "localhost:$2") return 0 ;;
        *) return 1 ;;
    esac
}

pg_up() { have pg_isready && pg_isready -h 127.0.0.1 -p 5432 -q; }
redis_up() { have redis-cli && [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; }

# Creates the URL's database on the local server when it does not exist yet.
ensure_database() {
    local scheme=${DB_URL%%://*} rest=${DB_URL#*://}
    local authority=${rest%%/*}
    local path=${rest#"$authority"} query=""
    [[ $path == *\?* ]] && query="?${path#*\?}"
    local name=${path#/}
    name=${name%%\?*}
    [[ -n $name ]] || return 0
    if [[ ! $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        say "not creating database '$name': only plain names are created here"
        return 0
    fi
    # Same server and credentials, connected to the maintenance database.
    local admin_url="$scheme://$authority/postgres$query"
    if [[ -z $(psql "$admin_url" -XAtqc "SELECT 1 FROM pg_database WHERE datname = '$name'") ]]; then
        say "creating database $name"
        psql "$admin_url" -Xqc "CREATE DATABASE \"$name\""
    fi
}

manage_pg=false
manage_redis=false
if is_local_default "$DB_URL" 5432 && ! pg_up; then manage_pg=true; fi
if is_local_default "$CACHE_URL" 6379 && ! redis_up; then manage_redis=true; fi
if ! $manage_pg && ! $manage_redis; then
    if $create_database && is_local_default "$DB_URL" 5432; then ensure_database; fi
    exit 0
fi

# Which packages provide what is missing.
missing_cmds=()
packages=()
if $manage_pg; then
    for cmd in pg_ctlcluster pg_isready; do have "$cmd" || missing_cmds+=("$cmd"); done
    if ! have pg_ctlcluster || ! have pg_isready || [[ ! -d /etc/postgresql ]]; then
        packages+=(postgresql)
    fi
fi
if $manage_redis; then
    for cmd in redis-server redis-cli; do have "$cmd" || missing_cmds+=("$cmd"); done
    if ! have redis-server || ! have redis-cli; then packages+=(redis-server); fi
fi

if ((${#packages[@]} > 0)); then
    if [[ $(id -u) -eq 0 ]] && have apt-get; then
        pg_was_installed=false
        [[ -d /etc/postgresql ]] && pg_was_installed=true
        say "installing ${packages[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${packages[@]}" >/dev/null
        for cmd in "${missing_cmds[@]}"; do
            have "$cmd" || { say "$cmd is still missing after installing ${packages[*]}"; exit 1; }
        done
        # A cluster created just now uses Debian's default password authentication on TCP;
        # the tests connect as postgres over 127.0.0.1 without a password, like the
        # documented development setup, so trust loopback connections on this fresh cluster.
        if ! $pg_was_installed && [[ -d /etc/postgresql ]]; then
            for hba in /etc/postgresql/*/main/pg_hba.conf; do
                sed -i -E '/^host/ s/(127\.0\.0\.1\/32|::1\/128)([[:space:]]+)(scram-sha-256|md5)/\1\2trust/' "$hba"
            done
            # The package may have started the cluster already; make it read the change.
            # shellcheck disable=SC2046 # one cluster version directory is expected here
            if pg_up; then pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main reload; fi
        fi
    else
        say "cannot start the servers the tests and the demo need: missing ${missing_cmds[*]:-a PostgreSQL cluster}"
        cat >&2 <<'EOF'
  install them (as root):   apt-get update && apt-get install -y postgresql redis-server
  or point touchline at servers you already run:
    the binary:  TOUCHLINE_DATABASE__URL=postgres://USER:PASSWORD@HOST:5432/DB
                 TOUCHLINE_IDENTITY__REDIS_URL=redis://HOST:6379
    the tests:   DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DB
                 REDIS_URL=redis://HOST:6379
EOF
        exit 1
    fi
fi

# Start whatever is down. A start that races with another one is harmless: the wait decides.
if $manage_pg && ! pg_up; then
    status=0
    pg_isready -h 127.0.0.1 -p 5432 -q || status=$?
    # 1 = the server is starting or shutting down: wait for it rather than start a second one.
    if [[ $status -ne 1 ]]; then
        say "starting postgresql"
        # shellcheck disable=SC2046 # one cluster version directory is expected here
        pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start ||
            say "pg_ctlcluster could not start the cluster; waiting in case it is already starting"
    fi
fi
if $manage_redis && ! redis_up; then
    say "starting redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log ||
        say "redis-server could not be started; see /var/log/redis/ci.log"
fi

# Wait, bounded, for both to answer.
for ((waited = 0; ; waited++)); do
    ready=true
    if $manage_pg && ! pg_up; then ready=false; fi
    if $manage_redis && ! redis_up; then ready=false; fi
    $ready && break
    if ((waited >= WAIT_SECS)); then
        $manage_pg && ! pg_up && say "postgresql is not ready on 127.0.0.1:5432 after ${WAIT_SECS}s"
        $manage_redis && ! redis_up && say "redis is not ready on 127.0.0.1:6379 after ${WAIT_SECS}s (log: /var/log/redis/ci.log)"
        exit 1
    fi
    sleep 1
done
$manage_pg && say "postgresql is ready on 127.0.0.1:5432"
$manage_redis && say "redis is ready on 127.0.0.1:6379"
if $create_database && is_local_default "$DB_URL" 5432; then ensure_database; fi
exit 0
