# kpl: an aggregating Kinesis producer for Go, and a Finnhub trade pipeline.
#
#   make run       run the whole pipeline locally (simulator -> producer -> kinesis-mock)
#   make test      unit, integration and end-to-end tests (-race), a short fuzz pass
#   make bench     go test benchmarks
#   make loadtest  aggregated versus single put, against the limit endpoint and kinesis-mock
#   make loadtest-spool  what the durable spool costs: throughput flat out, Put-to-durable latency at 2,000 trades/s
#   make fuzz      longer fuzzing
#   make stress    the producer's model-based stress test over many random schedules
#   make lint      go vet (also for 386 and Windows, the ARM build) and a gofmt check
#   make e2e-long  tests that wait through real long outages (minutes)

GO            ?= go
KINESIS_LOCAL_VERSION := 0.6.2
TOOLS         := $(CURDIR)/.tools
KINESIS_LOCAL := $(TOOLS)/node_modules/kinesis-local
export KINESIS_LOCAL_DIR := $(KINESIS_LOCAL)
# aws-kinesis-agg, the official Node deaggregator, for the interoperability test.
KINESIS_AGG_VERSION := 4.2.8
KINESIS_AGG   := $(TOOLS)/node_modules/aws-kinesis-agg
export KINESIS_AGG_DIR := $(KINESIS_AGG)

FUZZTIME      ?= 2m
TESTFLAGS     ?=

.PHONY: all run test unit fuzz-short fuzz bench loadtest loadtest-burst loadtest-spool lint tools stress e2e-long test32

all: lint test

# tools installs the pinned kinesis-local (kinesis-mock) and aws-kinesis-agg
# into a git-ignored folder. One npm call installs both: npm install --no-save
# removes the packages an earlier call installed.
tools: $(KINESIS_LOCAL)/main.js $(KINESIS_AGG)/index.js

$(KINESIS_LOCAL)/main.js $(KINESIS_AGG)/index.js &:
	mkdir -p $(TOOLS)
	cd $(TOOLS) && npm install --no-audit --no-fund --no-save --prefix $(TOOLS) \
		kinesis-local@$(KINESIS_LOCAL_VERSION) aws-kinesis-agg@$(KINESIS_AGG_VERSION)
	test -f $(KINESIS_LOCAL)/main.js && test -f $(KINESIS_AGG)/index.js

# run starts kinesis-mock, a 4-shard stream, the Finnhub simulator and the
# trade producer, and shows the producer's status lines; Ctrl-C stops them (the
# producer first, so that it delivers what it accepted) and prints the
# verifier's report of the stream. Binaries and logs go to out/.
run: tools
	GO=$(GO) bash scripts/run.sh

test: tools
	$(GO) test -race -count=1 -timeout 8m $(TESTFLAGS) ./...
	$(MAKE) test32
	$(MAKE) fuzz-short

# test32 runs the library's tests on 32-bit platforms: 386 natively, ARM
# under qemu-arm-static when it is installed (.ci/run installs it).
PKGS32 := ./aggregation ./dedupe ./producer ./spool
test32:
	GOARCH=386 $(GO) test -count=1 -timeout 5m $(PKGS32)
	@if command -v qemu-arm-static >/dev/null 2>&1; then \
		echo "GOARCH=arm $(GO) test -exec qemu-arm-static $(PKGS32)"; \
		GOARCH=arm $(GO) test -exec qemu-arm-static -count=1 -timeout 8m $(PKGS32); \
	else echo "test32: qemu-arm-static is not installed: ARM tests skipped (the ARM build is in make lint)"; fi

# e2e-long runs the variants of the recovery tests that wait through a real
# 60 s outage: of the feed (make test covers it with a 5 s outage and a fake
# clock), and of Kinesis with the spool and the default 30 s RecordTTL (make
# test: 8 s with a 3 s TTL).
e2e-long: tools
	KPL_LONG_TESTS=1 $(GO) test -race -count=1 -timeout 10m -run 'Minute' -v ./finnhub ./internal/e2e

# fuzz-short gives each fuzz target a few seconds; go test -fuzz takes one
# target at a time. The budgets are counts of runs, not durations: a
# duration's deadline can fail a run that found nothing ("context deadline
# exceeded", a race in Go's fuzzing coordinator, golang/go#75804, unfixed
# in go1.26).
FUZZ_SHORT_EXECS ?= 30000x
fuzz-short:
	$(GO) test -run '^$$' -fuzz '^FuzzDeaggregate$$' -fuzztime $(FUZZ_SHORT_EXECS) -fuzzminimizetime 1000x ./aggregation
	$(GO) test -run '^$$' -fuzz '^FuzzParseMessage$$' -fuzztime $(FUZZ_SHORT_EXECS) -fuzzminimizetime 1000x ./finnhub
	$(GO) test -run '^$$' -fuzz '^FuzzRedactURL$$' -fuzztime $(FUZZ_SHORT_EXECS) -fuzzminimizetime 1000x ./finnhub
	$(GO) test -run '^$$' -fuzz '^FuzzDedupe$$' -fuzztime $(FUZZ_SHORT_EXECS) -fuzzminimizetime 1000x ./dedupe
	$(GO) test -run '^$$' -fuzz '^FuzzEncodeTrade$$' -fuzztime $(FUZZ_SHORT_EXECS) -fuzzminimizetime 1000x ./internal/pipeline
	$(GO) test -run '^$$' -fuzz '^FuzzSegmentReader$$' -fuzztime $(FUZZ_SHORT_EXECS) -fuzzminimizetime 1000x ./spool

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDeaggregate$$' -fuzztime $(FUZZTIME) ./aggregation
	$(GO) test -run '^$$' -fuzz '^FuzzAggregateRoundTrip$$' -fuzztime $(FUZZTIME) ./aggregation
	$(GO) test -run '^$$' -fuzz '^FuzzParseMessage$$' -fuzztime $(FUZZTIME) ./finnhub
	$(GO) test -run '^$$' -fuzz '^FuzzRedactURL$$' -fuzztime $(FUZZTIME) ./finnhub
	$(GO) test -run '^$$' -fuzz '^FuzzDedupe$$' -fuzztime $(FUZZTIME) ./dedupe
	$(GO) test -run '^$$' -fuzz '^FuzzUnmarshalBinary$$' -fuzztime $(FUZZTIME) ./dedupe
	$(GO) test -run '^$$' -fuzz '^FuzzEncodeTrade$$' -fuzztime $(FUZZTIME) ./internal/pipeline
	$(GO) test -run '^$$' -fuzz '^FuzzParseDotEnv$$' -fuzztime $(FUZZTIME) ./internal/pipeline
	$(GO) test -run '^$$' -fuzz '^FuzzSegmentReader$$' -fuzztime $(FUZZTIME) ./spool

bench: tools
	$(GO) test -run '^$$' -bench . -benchmem ./aggregation ./dedupe ./producer ./bench ./spool

# loadtest compares the aggregated producer with one PutRecord per trade, one
# mode after the other in the same run: against the in-process limit-enforcing
# endpoint (4 shards, the service's write limits), then against kinesis-mock.
# kinesis-mock never throttles but absorbs only about 1 MB/s and slows as its
# shards fill; the producer's call window sizes its calls to that, with its
# default settings.
# Tables go to stdout; JSON and charts to out/. LOADTEST_FLAGS adds flags.
LOADTEST_FLAGS ?=
loadtest: tools
	mkdir -p out
	$(GO) build -o out/loadtest ./cmd/loadtest
	out/loadtest -mode both -shards 4 -duration 20s \
		-json out/loadtest-limit.json -chart out/loadtest-limit.png $(LOADTEST_FLAGS)
	out/loadtest -endpoint kinesis-mock -mode both -shards 4 -duration 15s \
		-json out/loadtest-kinesis-mock.json -chart out/loadtest-kinesis-mock.png $(LOADTEST_FLAGS)
	$(MAKE) loadtest-burst

# loadtest-burst offers trades flat out for 3 s against kinesis-mock with the
# producer's defaults: the buffer fills at once (about 200,000 trades), the
# call window must size the calls so that none times out, and the read-back
# must find no duplicate.
loadtest-burst: tools
	mkdir -p out
	$(GO) build -o out/loadtest ./cmd/loadtest
	out/loadtest -endpoint kinesis-mock -mode aggregated -shards 4 -duration 3s \
		-json out/loadtest-burst.json $(LOADTEST_FLAGS)

# loadtest-spool sends trades through the durable spool (default sync
# policy: fsync every 2 ms or 8,192 records) and the producer into the
# in-process counting client, which acknowledges at once: flat out (the
# throughput), then at 2,000 trades/s (the latency durability adds, from the
# append call to the fsync); each run first runs the producer without the
# spool as the baseline, and reports the ratio. The spools live under out/spool, on the disk
# being measured; the p99 follows that disk's fsync tail, so run it with
# the machine quiet.
loadtest-spool:
	mkdir -p out/spool
	$(GO) build -o out/loadtest ./cmd/loadtest
	out/loadtest -endpoint counting -spool-dir out/spool -duration 20s \
		-json out/loadtest-spool-full.json $(LOADTEST_FLAGS)
	out/loadtest -endpoint counting -spool-dir out/spool -rate 2000 -duration 20s \
		-json out/loadtest-spool-2000.json $(LOADTEST_FLAGS)

# stress runs the producer's model-based stress test for many random
# schedules (make test runs a few); STRESS_SEED=n replays one.
STRESS_RUNS ?= 200
stress:
	STRESS_RUNS=$(STRESS_RUNS) $(GO) test -race -count=1 -timeout 60m -run '^TestStressModel$$' ./producer

lint:
	$(GO) vet ./...
	GOARCH=386 $(GO) vet ./...
	GOARCH=arm $(GO) build ./...
	GOOS=windows $(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
