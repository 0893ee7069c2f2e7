# tcs — make targets (DESIGN.md section 6). Every target that needs slapd
# installs it first (apt-get, through scripts/slapd.sh install).

GO            ?= go
TCS_LDAP_PORT ?= 3890
TCS_LDAP_DIR  ?= $(CURDIR)/.ldap
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -X tcs/internal/version.Version=$(VERSION)
TEST_TIMEOUT  ?= 30m

.PHONY: all build test vet fmt-check deps test-deps ldap-up ldap-down bench bench-scale bench-batch bench-replica demo chaos clean
DEMO_FLAGS    ?=

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/tcs-agent ./cmd/tcs-agent
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/tcs-demo ./cmd/tcs-demo

# The patent's story with a throwaway slapd and three agents (see README).
demo: deps build
	bin/tcs-demo -root . -agent bin/tcs-agent $(DEMO_FLAGS)

# slapd and ldap-utils (apt-get when missing).
deps:
	@scripts/slapd.sh install

# ... and Chromium for the browser test of the status page.
test-deps: deps
	@scripts/install-chromium.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Every test, integration included, each against a slapd it starts itself.
test: test-deps fmt-check vet
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

# A throwaway local directory at ldap://127.0.0.1:$(TCS_LDAP_PORT).
ldap-up:
	@scripts/slapd.sh up "$(TCS_LDAP_DIR)" "$(TCS_LDAP_PORT)"

ldap-down:
	@scripts/slapd.sh down "$(TCS_LDAP_DIR)"

# The benchmark tables of DESIGN.md section 7, each target beside a baseline
# measured in the same run. Sizes: TCS_BENCH_SETS (10000) for the swarm,
# TCS_BENCH_AGENTS (20) and TCS_BENCH_SCALE_SETS (20000) for the scale run.
bench: deps
	$(GO) test -run '^$$' -bench 'BenchmarkSwarm|BenchmarkScale|BenchmarkBlocking|BenchmarkReplica|BenchmarkTxnMemory' -benchtime 1x -timeout 120m ./e2e

# The replicated directory alone (README "Replicated directory"): provider
# CPU and write latency with TCS_BENCH_WATCHERS (100) watchers on it vs over
# two consumers, a consumer's lag during a TCS_BENCH_SETS takeover, and a
# MirrorMode pair's failover with TCS_BENCH_MIRROR_SETS (1000) sets.
bench-replica: deps
	$(GO) test -run '^$$' -bench 'BenchmarkReplica' -benchtime 1x -timeout 60m ./e2e

# The chaos run of issue 10 (README "Chaos testing"): real slapd and six
# agents under a seeded schedule of overlapping faults, then the invariant
# checker. A fresh seed each time unless given; replay a run with its seed
# and topology (single, consumers: a provider and two read replicas, mirror:
# a MirrorMode pair behind a frontend; README "Replicated directory"):
#   make chaos CHAOS_SEED=1764680000 CHAOS_DURATION=10m CHAOS_TOPOLOGY=mirror
CHAOS_SEED     ?= $(shell date +%s)
CHAOS_DURATION ?= 2m
CHAOS_TOPOLOGY ?= single
chaos: deps
	CHAOS_SEED=$(CHAOS_SEED) CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_TOPOLOGY=$(CHAOS_TOPOLOGY) \
	  $(GO) test -count=1 -run '^TestChaos$$' -v -timeout 180m ./chaos

# DESIGN.md's scale target: 100 agents in 20 locations, 100,000 sets, one
# slapd; must finish within 15 minutes on 2 cores.
bench-scale: deps
	TCS_BENCH_AGENTS=100 TCS_BENCH_LOCATIONS=20 TCS_BENCH_SCALE_SETS=100000 \
	$(GO) test -run '^$$' -bench 'BenchmarkScale' -benchtime 1x -timeout 30m ./e2e

# Transaction size against other agents' lease-refresh latency (how the
# default batch_size was chosen).
bench-batch: deps
	TCS_TXN_STRESS=1 $(GO) test -count=1 -run '^TestManySmallTransactionsKeepSlapdUp$$' -v ./ldapdir
	TCS_TXN_STRESS=1 $(GO) test -count=1 -run '^TestPatentStoryInTransactions$$' -v -timeout 10m ./e2e
	$(GO) test -run '^$$' -bench 'BenchmarkBatchSize' -benchtime 1x -timeout 30m ./e2e

clean:
	rm -rf bin
