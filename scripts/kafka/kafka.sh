#!/usr/bin/env bash
# Starts and stops a single-node Apache Kafka 4.x broker (KRaft, one JVM) for bgrm's tests and demos.
#   scripts/kafka/kafka.sh start [--port 9092]   waits until the broker has started; prints its address
#   scripts/kafka/kafka.sh stop  [--port 9092]   stops it and deletes its data
#   scripts/kafka/kafka.sh status [--port 9092]
# With --keep-data, stop keeps the broker's data and start reuses it: a restart that loses nothing
# (used to test recovery from a broker outage).
# With --secure, start makes a broker as production clusters run them: SASL_SSL on PORT (SCRAM-SHA-512,
# SCRAM-SHA-256 and PLAIN; user bgrm with a password made at start) and mutual TLS on PORT+2, with a
# CA and certificates made by openssl at start. It prints what a client needs: the CA, a client
# certificate and key, the password file, and a client.properties (all under .cache/kafka/run-PORT/tls).
# Its authoriser (KRaft's StandardAuthorizer) denies user bgrm the topics, groups and transactional ids
# whose names start with "denied-"; everything else is allowed.
# Jars come from Maven Central (scripts/kafka/pom.xml) into .cache/kafka/libs; data goes to a fresh
# folder under .cache/kafka/; the broker listens on 127.0.0.1 only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cmd="${1:-}"; shift || true
port=9092
keep=0
secure=0
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --keep-data) keep=1; shift ;;
    --secure) secure=1; shift ;;
    *) echo "kafka.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
cport=$((port + 1))
tlsport=$((port + 2))      # --secure: mutual TLS
internalport=$((port + 3)) # --secure: the broker's own listener (plaintext, 127.0.0.1)
libs="$root/.cache/kafka/libs"
run="$root/.cache/kafka/run-$port"
pidfile="$run/kafka.pid"

# The jars are resolved again when pom.xml changes (.complete holds the checksum of the pom they came from).
ensure_jars() {
  local want
  want="$(sha256sum "$here/pom.xml" | cut -c1-64)"
  if [ "$(cat "$libs/.complete" 2>/dev/null)" != "$want" ]; then
    command -v mvn >/dev/null || { echo "kafka.sh: Maven (mvn) and a JDK 17+ are needed: sudo apt-get install maven openjdk-17-jdk-headless" >&2; exit 1; }
    echo "kafka.sh: resolving Kafka jars with Maven (once)" >&2
    rm -rf "$libs"
    mvn -q -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$libs" >&2
    echo "$want" > "$libs/.complete"
  fi
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

# --secure: a CA, the broker's certificate (127.0.0.1, localhost) and a client certificate, PEM files.
make_tls() {
  local d="$run/tls"
  mkdir -p "$d"; chmod 700 "$d"
  command -v openssl >/dev/null || { echo "kafka.sh: --secure needs openssl" >&2; exit 1; }
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bgrm test CA" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$d/broker.ext"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$d/broker.key" -out "$d/broker.csr" 2>/dev/null
  openssl x509 -req -in "$d/broker.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 -extfile "$d/broker.ext" -out "$d/broker.crt" 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in "$d/broker.key" -out "$d/broker.pk8"
  cat "$d/broker.pk8" "$d/broker.crt" "$d/ca.pem" > "$d/broker.pem"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=bgrm-client" -keyout "$d/client.key" -out "$d/client.csr" 2>/dev/null
  openssl x509 -req -in "$d/client.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 -out "$d/client.pem" 2>/dev/null
  openssl rand -hex 16 > "$d/password"
  chmod 600 "$d"/*.key "$d/password"
  cat > "$d/client.properties" <<CLIENT
# SCRAM over TLS to the test broker (the password: BGRM_KAFKA_SASL_PASSWORD=\$(cat $d/password))
bootstrap.servers=127.0.0.1:$port
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.username=bgrm
ssl.ca.location=$d/ca.pem
CLIENT
  cat > "$d/mtls.properties" <<CLIENT
# mutual TLS to the test broker
bootstrap.servers=127.0.0.1:$tlsport
security.protocol=SSL
ssl.ca.location=$d/ca.pem
ssl.certificate.location=$d/client.pem
ssl.key.location=$d/client.key
CLIENT
}

secure_properties() {
  local d="$run/tls" pw
  pw="$(cat "$d/password")"
  cat <<PROPS
listeners=SASL_SSL://127.0.0.1:$port,SSL://127.0.0.1:$tlsport,INTERNAL://127.0.0.1:$internalport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=SASL_SSL://127.0.0.1:$port,SSL://127.0.0.1:$tlsport,INTERNAL://127.0.0.1:$internalport
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=SASL_SSL:SASL_SSL,SSL:SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_bgrm="$pw";
listener.name.ssl.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=true
ssl.keystore.type=PEM
ssl.keystore.location=$d/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$d/ca.pem
PROPS
}

# --secure: ACLs that deny user bgrm every topic, consumer group and transactional id whose name
# starts with "denied-" (what a user meets on a cluster whose operator has not granted them); any
# other resource has no ACL and is allowed. The broker's own plaintext listeners (127.0.0.1) act as
# the super user that writes them.
deny_acls() {
  java_cmd org.apache.kafka.tools.AclCommand --bootstrap-server "127.0.0.1:$internalport" --add \
    --deny-principal User:bgrm --operation All --resource-pattern-type prefixed \
    --topic denied- --group denied- --transactional-id denied- >"$run/acls.log" 2>&1 \
    || { echo "kafka.sh: could not write the ACLs; see $run/acls.log" >&2; tail -5 "$run/acls.log" >&2; exit 1; }
}

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
    if [ "$secure" = 1 ]; then make_tls; listeners="$(secure_properties)"; else listeners="listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"; fi
    cat > "$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
controller.listener.names=CONTROLLER
$listeners
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
    scram=()
    if [ "$secure" = 1 ]; then
      pw="$(cat "$run/tls/password")"
      scram=(--add-scram "SCRAM-SHA-512=[name=bgrm,password=$pw]" --add-scram "SCRAM-SHA-256=[name=bgrm,password=$pw]")
    fi
    java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$run/server.properties" "${scram[@]}" >"$run/format.log" 2>&1 \
      || { cat "$run/format.log" >&2; exit 1; }
    fi
    mv -f "$run/server.log" "$run/server.log.prev" 2>/dev/null || true
    setsid nohup bash -c "$(declare -f java_cmd); libs='$libs' run='$run' here='$here'; java_cmd kafka.Kafka '$run/server.properties'" \
      >"$run/stdout.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    for _ in $(seq 1 120); do
      if grep -q "Kafka Server started" "$run/server.log" 2>/dev/null; then
        echo "127.0.0.1:$port"
        if [ -d "$run/tls" ]; then
          deny_acls
          echo "kafka.sh: SASL_SSL (SCRAM-SHA-512/256, PLAIN; user bgrm) on 127.0.0.1:$port, mutual TLS on 127.0.0.1:$tlsport" >&2
          echo "kafka.sh: CA $run/tls/ca.pem, password in $run/tls/password, settings in $run/tls/client.properties and mtls.properties" >&2
        fi
        exit 0
      fi
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
    echo "usage: scripts/kafka/kafka.sh start|stop|status [--port N] [--keep-data] [--secure]" >&2; exit 2 ;;
esac
