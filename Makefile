# Switchboard: make run serves on the embedded default; make test runs the whole suite.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN      := bin/switchboard
BENCH    ?= .
BENCHTIME ?= 1s
# golangci-lint, pinned: the Go toolchain fetches it from the module proxy and builds it once
# into the Go build cache (minutes on a fresh machine), then runs it from there (seconds).
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT := $(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: all deps build run test bench lint vet fmt clean sdk browser

all: build

# The Debian packages the project needs (installed with apt-get when missing; as root).
deps:
	@./scripts/deps.sh

build: deps
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/switchboard

# Build, apply migrations, serve on :8080 with SQLite under ./data.
run: build
	./$(BIN) migrate up
	./$(BIN) serve

vet:
	$(GO) vet ./...

# The linters of .golangci.yml over every package; its analysis cache makes a re-run take seconds.
lint:
	$(GOLANGCI_LINT) run ./...

# The whole suite with the race detector, plus go vet and the linters, against a real
# PostgreSQL (TEST_DATABASE_URL, or a throwaway cluster made for the run) and SQLite.
test: deps lint vet sdk browser
	./scripts/with-postgres.sh $(GO) test -race -count=1 -timeout 30m ./...

# Benchmarks (figures in BENCHMARKS.md). The API and store benchmarks scale with BENCHTIME;
# each stream benchmark is one scenario (10,000 real sockets at the largest), run once.
#   make bench BENCH=GetAgent BENCHTIME=50000x
bench: deps
	./scripts/with-postgres.sh $(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem ./api/ ./store/ ./media/ ./agent/...
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime 1x -benchmem ./realtime/ ./rtc/ ./mediastream/

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# The official OpenAI and Anthropic clients and the AI SDK (`ai`), versions pinned in
# testdata/sdk/package.json, that api/sdk_test.go and the Alumia tests run as judges of the
# gateway and of the UI message stream; installed once (again when one is missing), not vendored.
sdk:
	@test -d testdata/sdk/node_modules/openai -a -d testdata/sdk/node_modules/@anthropic-ai/sdk -a -d testdata/sdk/node_modules/ai || \
		npm install --no-audit --no-fund --prefix testdata/sdk

# playwright-core (version pinned in testdata/browser/package.json), which drives Debian's
# Chromium (installed by deps) through the voice client and the dashboard in
# cmd/switchboard/browser_test.go; it never downloads a browser of its own.
browser:
	@test -d testdata/browser/node_modules/playwright-core || npm install --no-audit --no-fund --prefix testdata/browser
