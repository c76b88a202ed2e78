#!/usr/bin/env bash
# bench/records.sh [records] — the records store and API against PostgreSQL's own speed.
#
# Starts a gateway on a throwaway database (PostgreSQL and Kafka from deploy/local must run:
# tests/run.sh or deploy/local/up.sh leaves them running), then measures in the same run,
# on loopback (bench/records.c):
#   ingest: jn_records_save, the whole path, beside a raw binary COPY of the same rows;
#   read:   GET /records pages of 1,000, beside a raw keyset SELECT of the same rows;
# and prints records/s of each and the ratios.
set -euo pipefail
RECORDS="${1:-100000}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_need "$BUILD/bench/records"
bench_start_gateway
DB_URL="${JUNCTION_DATABASE_URL%/*}/$DB"
echo "bench: $(nproc) cores; PostgreSQL $(psql -At "$DB_URL" -c 'SHOW server_version')"
"$BUILD/bench/records" "$DB_URL" "$GW" "$KEY" "$RECORDS"
