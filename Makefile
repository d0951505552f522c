# deskd build and test entry points. `make test` is the command CI runs (through .ci/run).
GO        ?= go
PKGS      ?= ./...
DESKD_CORPUS ?= $(abspath ../shared/corpus)
export DESKD_CORPUS

.PHONY: build test lint fmt-check vet pg mailstack bench demo clean

build:
	$(GO) build -o bin/deskd ./cmd/deskd

## test: gofmt check, go vet and the full race-enabled, shuffled test suite against real Postgres,
## Dovecot and Postfix (installed/started first when possible).
test: pg mailstack fmt-check vet
	$(GO) test -race -shuffle=on -timeout 20m $(PKGS)

lint: fmt-check vet

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## pg: start or install PostgreSQL on 127.0.0.1:5432.
pg:
	@scripts/ensure-postgres.sh

## mailstack: install Dovecot, Postfix and s-nail for the interop tests when missing (root only).
mailstack:
	@if [ -x scripts/install-mailstack.sh ]; then scripts/install-mailstack.sh; fi

bench: pg
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

demo: pg build
	bin/deskd demo

clean:
	rm -rf bin
