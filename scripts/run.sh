#!/usr/bin/env bash
# run.sh runs the whole trade pipeline on this machine, with no AWS account
# and no Finnhub key:
#
#   kinesis-mock (node, from .tools/)  <-  tradeproducer  <-  feedsim (Finnhub simulator)
#
# It builds the commands into out/, starts kinesis-mock, creates a 4-shard
# stream, starts the simulator and the producer (whose status lines show on
# the terminal), and on Ctrl-C (SIGINT or SIGTERM) stops the producer first
# so that it delivers everything it accepted, then the simulator, prints the
# verifier's report of the stream, and stops kinesis-mock. Logs go to out/.
#
# Settings (environment): KINESIS_PORT (4567), FEED_ADDR (127.0.0.1:8765),
# FEED_RATE (trades/s, 500), SHARDS (4), KINESIS_STREAM_NAME
# (datalake-stream), STATUS_INTERVAL (5s), SPOOL_DIR (a directory for the
# producer's durable spool, -spool-dir; unset: no spool), PRODUCER_FLAGS
# (extra flags).
#
# Exit status: 0 when the verifier found every delivered trade (or was
# skipped with a second Ctrl-C, which is said), 1 when it found a problem,
# 2 for a configuration error, else the producer's status.
set -euo pipefail

# On a terminal, the script runs itself again as a job of its own (a process
# group that owns the terminal): Ctrl-C then reaches only this script and
# not make, which would otherwise die of the signal and end with its
# "Interrupt" line and status 130 whatever the run's outcome.
if [ -z "${RUN_SH_JOB:-}" ] && [ -t 0 ]; then
	set -m
	RC=0
	RUN_SH_JOB=1 bash "$0" "$@" || RC=$?
	exit "$RC"
fi
set -m # background jobs get their own process groups: Ctrl-C reaches only this script

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/out
KINESIS_LOCAL_DIR=${KINESIS_LOCAL_DIR:-$ROOT/.tools/node_modules/kinesis-local}
KINESIS_PORT=${KINESIS_PORT:-4567}
FEED_ADDR=${FEED_ADDR:-127.0.0.1:8765}
FEED_RATE=${FEED_RATE:-500}
SHARDS=${SHARDS:-4}
STREAM=${KINESIS_STREAM_NAME:-datalake-stream}
STATUS_INTERVAL=${STATUS_INTERVAL:-5s}
PRODUCER_FLAGS=${PRODUCER_FLAGS:-}
SPOOL_FLAGS=()
if [ -n "${SPOOL_DIR:-}" ]; then
	SPOOL_FLAGS=(-spool-dir "$SPOOL_DIR")
fi

say() { printf '\n==> %s\n' "$*" >&2; }

if [ ! -f "$KINESIS_LOCAL_DIR/main.js" ]; then
	echo "run.sh: kinesis-local is not installed in $KINESIS_LOCAL_DIR: run 'make tools' first." >&2
	exit 1
fi
command -v node >/dev/null || { echo "run.sh: node is not on PATH: install Node.js." >&2; exit 1; }

MOCK_PID= FEED_PID= PRODUCER_PID= TAIL_PID= STOP=
stop_pid() { # pid signal: signal a process group and wait for it
	local pid=$1 sig=$2
	[ -n "$pid" ] || return 0
	kill -"$sig" -- "-$pid" 2>/dev/null || kill -"$sig" "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	stop_pid "$PRODUCER_PID" TERM
	stop_pid "$TAIL_PID" TERM
	stop_pid "$FEED_PID" TERM
	stop_pid "$MOCK_PID" TERM
}
trap cleanup EXIT
trap 'STOP=1' INT TERM
stop_requested() { [ -z "$STOP" ] || { echo "run.sh: interrupted" >&2; exit 130; }; }

mkdir -p "$OUT"
say "building tradeproducer, feedsim and verify into out/"
(cd "$ROOT" && "${GO:-go}" build -o "$OUT/" ./cmd/tradeproducer ./cmd/feedsim ./cmd/verify)
stop_requested

# The AWS SDK in the commands talks to kinesis-mock with dummy credentials.
export AWS_ENDPOINT_URL=http://127.0.0.1:$KINESIS_PORT
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-AKIALOCALRUN}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local-run-secret}
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_EC2_METADATA_DISABLED=true
export KINESIS_STREAM_NAME=$STREAM

if (exec 3<>"/dev/tcp/127.0.0.1/$KINESIS_PORT") 2>/dev/null; then
	echo "run.sh: port $KINESIS_PORT is already in use: stop what listens there or set KINESIS_PORT." >&2
	exit 1
fi

say "starting kinesis-mock on port $KINESIS_PORT (log: out/kinesis-mock.log)"
KINESIS_MOCK_CERT_PATH="$KINESIS_LOCAL_DIR/server.json" \
KINESIS_MOCK_PLAIN_PORT=$KINESIS_PORT \
KINESIS_MOCK_TLS_PORT=$((KINESIS_PORT + 1)) \
LOG_LEVEL=WARN \
CREATE_STREAM_DURATION=100ms \
	node "$KINESIS_LOCAL_DIR/main.js" >"$OUT/kinesis-mock.log" 2>&1 &
MOCK_PID=$!

say "creating stream $STREAM with $SHARDS shards"
for i in $(seq 1 120); do
	CREATE_RC=0
	"$OUT/verify" -create "$SHARDS" -stream "$STREAM" -timeout 5s 2>"$OUT/create.err" || CREATE_RC=$?
	[ "$CREATE_RC" = 0 ] && break
	if [ "$CREATE_RC" = 2 ]; then # a configuration error: retrying cannot help
		cat "$OUT/create.err" >&2
		exit 2
	fi
	[ "$CREATE_RC" -gt 128 ] && STOP=1 # Ctrl-C reached verify
	if ! kill -0 "$MOCK_PID" 2>/dev/null; then
		echo "run.sh: kinesis-mock exited; see out/kinesis-mock.log:" >&2
		tail -n 20 "$OUT/kinesis-mock.log" >&2
		exit 1
	fi
	stop_requested
	if [ "$i" = 120 ]; then
		echo "run.sh: kinesis-mock did not answer in 60s:" >&2
		cat "$OUT/create.err" >&2
		exit 1
	fi
	sleep 0.5
done

say "starting the Finnhub simulator on $FEED_ADDR at $FEED_RATE trades/s (log: out/feedsim.log)"
"$OUT/feedsim" -addr "$FEED_ADDR" -rate "$FEED_RATE" -seed 1 >"$OUT/feedsim.log" 2>&1 &
FEED_PID=$!
for i in $(seq 1 50); do
	grep -q 'listening on' "$OUT/feedsim.log" && break
	if ! kill -0 "$FEED_PID" 2>/dev/null || [ "$i" = 50 ]; then
		echo "run.sh: the simulator did not start (is $FEED_ADDR in use? set FEED_ADDR):" >&2
		tail -n 5 "$OUT/feedsim.log" >&2
		exit 1
	fi
	sleep 0.1
done

stop_requested
say "starting the trade producer (log: out/tradeproducer.log); press Ctrl-C to stop"
# The producer logs to a file (a pipe could break under it on Ctrl-C); tail
# shows the file.
: >"$OUT/tradeproducer.log"
# shellcheck disable=SC2086 # PRODUCER_FLAGS is a list of flags
FINNHUB_URL=ws://$FEED_ADDR/ "$OUT/tradeproducer" -status-interval "$STATUS_INTERVAL" -env-file /dev/null ${SPOOL_FLAGS[@]+"${SPOOL_FLAGS[@]}"} $PRODUCER_FLAGS \
	>>"$OUT/tradeproducer.log" 2>&1 &
PRODUCER_PID=$!
tail -n +1 -f "$OUT/tradeproducer.log" >&2 &
TAIL_PID=$!

while [ -z "$STOP" ] && kill -0 "$PRODUCER_PID" 2>/dev/null; do
	wait "$PRODUCER_PID" 2>/dev/null || true
done

if [ -n "$STOP" ]; then
	say "stopping the producer (it delivers what it accepted first)"
	kill -INT "$PRODUCER_PID" 2>/dev/null || true
fi
# A signal interrupts wait (status > 128) while the producer still runs:
# wait again until it has really exited, for its own status.
while :; do
	PRODUCER_RC=0
	wait "$PRODUCER_PID" 2>/dev/null || PRODUCER_RC=$?
	kill -0 "$PRODUCER_PID" 2>/dev/null || break
done
PRODUCER_PID=
sleep 0.5 # let tail show the last lines
stop_pid "$TAIL_PID" TERM
TAIL_PID=

say "stopping the simulator"
stop_pid "$FEED_PID" INT
FEED_PID=
grep -v '^\s*$' "$OUT/feedsim.log" | tail -n 2 >&2 || true

DELIVERED=$(sed -n 's/.*msg="final summary".* delivered=\([0-9]*\).*/\1/p' "$OUT/tradeproducer.log" | tail -n 1)
say "verifying stream $STREAM (the producer reported ${DELIVERED:-?} trades delivered)"
echo "run.sh: press Ctrl-C again to skip the verification" >&2
VERIFY_RC=0
if [ -n "$DELIVERED" ]; then
	"$OUT/verify" -stream "$STREAM" -expect "$DELIVERED" || VERIFY_RC=$?
else
	"$OUT/verify" -stream "$STREAM" || VERIFY_RC=$?
fi
SKIPPED=
if [ "$VERIFY_RC" -gt 128 ]; then # verify stopped by Ctrl-C
	SKIPPED=1
	VERIFY_RC=0
	say "verification SKIPPED (Ctrl-C): the stream was not checked"
fi

say "stopping kinesis-mock"
stop_pid "$MOCK_PID" TERM
MOCK_PID=
if [ "$PRODUCER_RC" != 0 ]; then
	echo "run.sh: the producer exited with status $PRODUCER_RC" >&2
	exit "$PRODUCER_RC"
fi
if [ "$VERIFY_RC" = 0 ] && [ -z "$SKIPPED" ]; then
	say "done: every delivered trade was found in the stream"
fi
exit "$VERIFY_RC"
