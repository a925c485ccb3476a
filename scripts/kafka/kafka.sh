#!/usr/bin/env bash
# Starts and stops a single-node Apache Kafka 4.x broker (KRaft, one JVM) for bgrm's tests and demos.
#   scripts/kafka/kafka.sh start [--port 9092]   waits until the broker has started; prints its address
#   scripts/kafka/kafka.sh stop  [--port 9092]   stops it and deletes its data
#   scripts/kafka/kafka.sh status [--port 9092]
# With --keep-data, stop keeps the broker's data and start reuses it: a restart that loses nothing
# (used to test recovery from a broker outage).
# Jars come from Maven Central (scripts/kafka/pom.xml) into .cache/kafka/libs; data goes to a fresh
# folder under .cache/kafka/; the broker listens on 127.0.0.1 only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cmd="${1:-}"; shift || true
port=9092
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --keep-data) keep=1; shift ;;
    *) echo "kafka.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
cport=$((port + 1))
libs="$root/.cache/kafka/libs"
run="$root/.cache/kafka/run-$port"
pidfile="$run/kafka.pid"

ensure_jars() {
  if [ ! -f "$libs/.complete" ]; then
    command -v mvn >/dev/null || { echo "kafka.sh: Maven (mvn) and a JDK 17+ are needed: sudo apt-get install maven openjdk-17-jdk-headless" >&2; exit 1; }
    echo "kafka.sh: resolving Kafka jars with Maven (once)" >&2
    rm -rf "$libs"
    mvn -q -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$libs" >&2
    touch "$libs/.complete"
  fi
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

java_cmd() { java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true -Dkafka.logs.dir="$run" \
  -Dlog4j2.configurationFile="$here/log4j2.properties" -cp "$libs/*" "$@"; }

case "$cmd" in
  start)
    if running; then echo "127.0.0.1:$port"; exit 0; fi
    ensure_jars
    if [ "$keep" = 1 ] && [ -f "$run/data/meta.properties" ]; then
      : # the data of the last run, kept by stop --keep-data
    else
    rm -rf "$run"; mkdir -p "$run/data"
    cat > "$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$run/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=16777216
log.flush.interval.messages=1
PROPS
    cluster_id="$(java_cmd kafka.tools.StorageTool random-uuid | tail -n1)"
    java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$run/server.properties" >"$run/format.log" 2>&1 \
      || { cat "$run/format.log" >&2; exit 1; }
    fi
    mv -f "$run/server.log" "$run/server.log.prev" 2>/dev/null || true
    setsid nohup bash -c "$(declare -f java_cmd); libs='$libs' run='$run' here='$here'; java_cmd kafka.Kafka '$run/server.properties'" \
      >"$run/stdout.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    for _ in $(seq 1 120); do
      if grep -q "Kafka Server started" "$run/server.log" 2>/dev/null; then echo "127.0.0.1:$port"; exit 0; fi
      if ! running; then echo "kafka.sh: the broker exited; see $run/stdout.log and $run/server.log" >&2; tail -20 "$run/stdout.log" >&2; exit 1; fi
      sleep 0.5
    done
    echo "kafka.sh: the broker did not start within 60 s; see $run/server.log" >&2
    exit 1
    ;;
  stop)
    if running; then
      pid="$(cat "$pidfile")"
      kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 -- -"$pid" 2>/dev/null || true
    fi
    if [ "$keep" = 1 ]; then rm -f "$pidfile"; else rm -rf "$run"; fi
    ;;
  status)
    if running; then echo "running on 127.0.0.1:$port (pid $(cat "$pidfile"))"; else echo "not running"; exit 1; fi
    ;;
  *)
    echo "usage: scripts/kafka/kafka.sh start|stop|status [--port N]" >&2; exit 2 ;;
esac
