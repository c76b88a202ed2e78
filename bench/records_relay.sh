#!/usr/bin/env bash
# bench/records_relay.sh [changes per round] [rounds] — the outbox relay against librdkafka.
#
# Starts a gateway on a throwaway database and topic prefix (PostgreSQL and Kafka from
# deploy/local must run: tests/run.sh or deploy/local/up.sh leaves them running), then
# measures in the same run (bench/records_relay.c), per round: record-change events
# published per second by a relay thread draining the outbox (read, encode, produce, wait
# for the acknowledgements, delete), beside the same events produced straight with
# librdkafka; then the medians and their ratio. No worker runs: the bench holds the relay.
set -euo pipefail
CHANGES="${1:-50000}"
ROUNDS="${2:-5}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_need "$BUILD/bench/records_relay"
PARTITIONS="${JUNCTION_TOPIC_PARTITIONS:-12}"
bench_start_gateway JUNCTION_TOPIC_PARTITIONS="$PARTITIONS"
echo "bench: $(nproc) cores; PostgreSQL $(psql -At "$JUNCTION_DATABASE_URL" -c 'SHOW server_version');" \
  "Kafka at $JUNCTION_KAFKA_BROKERS"
mapfile -t vars < <(bench_env)
env "${vars[@]}" JUNCTION_TOPIC_PARTITIONS="$PARTITIONS" JUNCTION_LOG_LEVEL=error ${BENCH_WRAP:-} \
  "$BUILD/bench/records_relay" "$GW" "$KEY" "$CHANGES" "$ROUNDS"
