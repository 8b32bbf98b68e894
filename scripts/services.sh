#!/usr/bin/env bash
# Starts the local services the tests use when they are not answering, with
# the commands this machine's services were started with. Each is bound to
# loopback. Usage: scripts/services.sh up
set -uo pipefail
cd "$(dirname "$0")/.."

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  for _ in $(seq 1 "$3"); do
    listening "$2" && return 0
    sleep 1
  done
  echo "services: $1 did not start listening on 127.0.0.1:$2 within $3s" >&2
  return 1
}

start() { # name port seconds command...
  local name=$1 port=$2 secs=$3
  shift 3
  if listening "$port"; then
    return 0
  fi
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "services: $name is down and $1 is not installed; tests that need it will fail under CI=true" >&2
    return 0
  fi
  echo "services: starting $name" >&2
  "$@" >/dev/null 2>&1 || echo "services: '$*' failed" >&2
  wait_port "$name" "$port" "$secs" || true
}

# emulator builds one of the module's emulator wrappers (internal/emulator)
# and runs it in the background, detached, logging to .cache/<name>.log.
# An emulator this script started earlier from a different build is
# restarted, so tests never run against a stale emulator; a server on the
# port that this script did not start is left alone.
emulator() { # name port args...
  local name=$1 port=$2
  shift 2
  mkdir -p .cache/bin
  if ! go build -o ".cache/bin/$name.new" "./internal/emulator/$name"; then
    echo "services: building the $name emulator failed" >&2
    return 0
  fi
  if listening "$port"; then
    if cmp -s ".cache/bin/$name.new" ".cache/bin/$name"; then
      rm -f ".cache/bin/$name.new"
      return 0
    fi
    local pid
    pid=$(cat ".cache/$name.pid" 2>/dev/null || true)
    if [ -z "$pid" ] || ! kill "$pid" 2>/dev/null; then
      echo "services: 127.0.0.1:$port is taken by a server this script did not start; using it as the $name emulator" >&2
      rm -f ".cache/bin/$name.new"
      return 0
    fi
    echo "services: restarting $name (its build changed)" >&2
    for _ in $(seq 1 50); do listening "$port" || break; sleep 0.1; done
  fi
  mv ".cache/bin/$name.new" ".cache/bin/$name"
  echo "services: starting $name on 127.0.0.1:$port" >&2
  setsid nohup ".cache/bin/$name" "$@" >".cache/$name.log" 2>&1 </dev/null &
  echo $! >".cache/$name.pid"
  wait_port "$name" "$port" 30 || true
}

case "${1:-up}" in
  up)
    start Redis 6379 20 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    start RabbitMQ 5672 90 rabbitmq-server -detached
    if ! listening 5432 && [ -d /etc/postgresql ]; then
      start PostgreSQL 5432 30 pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    fi
    start MariaDB 3306 30 start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    emulator kfake 19092 -port 19092
    emulator goaws 4100 -addr 127.0.0.1:4100 -config internal/emulator/goaws/goaws.yaml
    ;;
  *)
    echo "usage: $0 up" >&2
    exit 2
    ;;
esac
