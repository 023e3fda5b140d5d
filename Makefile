# The two commands a newcomer needs: `make run` and `make test`.
GO        ?= go
DATA_DIR  ?= .localhub
BIN       := bin

.PHONY: run test build bench fuzz vet clean

## run: start the local system (the local IoT Hub on 127.0.0.1:8883/8443) and print what to try
run: build
	$(BIN)/localhub serve --data-dir $(DATA_DIR)

## test: every test, with the race detector (fuzz seed corpora included)
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...

## build: the binaries, into bin/
build:
	$(GO) build -o $(BIN)/localhub ./cmd/localhub

## bench: every benchmark (scale scenarios live here, not in tests)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf $(BIN) dist
