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

# Emulators this script starts are recorded machine-wide (not in the
# checkout), so that a run from another clone of the project, such as CI's,
# can restart them too.
EMULATOR_DIR=${MSGKIT_EMULATOR_DIR:-/tmp/msgkit-emulators}

# emulator builds one of the module's emulator wrappers (internal/emulator)
# and (re)starts it in the background, detached, logging to
# .cache/<name>.log. Every run starts a fresh one: the emulators keep
# everything in memory, and state piling up run after run (gigabytes of
# records, thousands of queues) slows the tests down. An emulator on the
# port that this script did not start is left alone and used as it is.
emulator() { # name port args...
  local name=$1 port=$2
  shift 2
  mkdir -p .cache/bin "$EMULATOR_DIR"
  if ! go build -o ".cache/bin/$name" "./internal/emulator/$name"; then
    echo "services: building the $name emulator failed" >&2
    return 0
  fi
  if listening "$port"; then
    local pid
    pid=$(cat "$EMULATOR_DIR/$name.pid" 2>/dev/null || true)
    if [ -z "$pid" ] || ! grep -q "$name" "/proc/$pid/cmdline" 2>/dev/null || ! kill "$pid" 2>/dev/null; then
      echo "services: 127.0.0.1:$port is taken by a server this script did not start; using it as the $name emulator" >&2
      return 0
    fi
    for _ in $(seq 1 50); do listening "$port" || break; sleep 0.1; done
  fi
  echo "services: starting a fresh $name on 127.0.0.1:$port" >&2
  setsid nohup ".cache/bin/$name" "$@" >".cache/$name.log" 2>&1 </dev/null &
  echo $! >"$EMULATOR_DIR/$name.pid"
  wait_port "$name" "$port" 30 || true
}

case "${1:-up}" in
  up)
    start Redis 6379 20 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    # A node whose app was stopped (a restart test interrupted between
    # stop_app and start_app) runs but does not listen: start the app.
    if ! listening 5672 && command -v rabbitmqctl >/dev/null 2>&1 && timeout 20 rabbitmqctl ping >/dev/null 2>&1; then
      echo "services: RabbitMQ's node runs with its app stopped; starting the app" >&2
      timeout 60 rabbitmqctl start_app >/dev/null 2>&1 || echo "services: rabbitmqctl start_app failed" >&2
      wait_port RabbitMQ 5672 30 || true
    fi
    start RabbitMQ 5672 90 rabbitmq-server -detached
    if ! listening 5432 && [ -d /etc/postgresql ]; then
      start PostgreSQL 5432 30 pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    fi
    start NATS 4222 20 start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    start MariaDB 3306 30 start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    emulator kfake 19092 -port 19092
    emulator goaws 4100 -addr 127.0.0.1:4100 -config internal/emulator/goaws/goaws.yaml
    ;;
  *)
    echo "usage: $0 up" >&2
    exit 2
    ;;
esac
