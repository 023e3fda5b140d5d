# The two commands a newcomer needs: `make run` and `make test`.
# The simulator is its own Go module (see simulator/README.md), so every
# target covers both modules.
GO       ?= go
BIN      := bin
DIST     := dist
APP      := $(DIST)/app
LOCAL    := $(DIST)/local
FUNC     := $(DIST)/func
FUNCTIONS := $(wildcard functions/*/function.json)
# EXE is this machine's executable suffix: .exe on Windows, else empty.
EXE      := $(shell $(GO) env GOEXE)

.PHONY: run test lint build func-app bench perf fuzz package conformance-node clean

## run: start the local system (hub, function app under the local host, simulated devices) and print what to try;
## knobs on the command line, one per localdev flag: make run DEVICES=25 PREFIX=dev- HTTP_ADDR=127.0.0.1:7072
run: build
	$(localdev_env) $(BIN)/localdev$(EXE)

# run's knobs: KNOB=value on make's command line becomes LOCALDEV_KNOB for
# localdev (bin/localdev -h lists them). Only knobs given on the command line
# are passed: an unrelated HOSTNAME or PREFIX in the environment is not, while
# LOCALDEV_* variables in the environment reach localdev as they are.
LOCALDEV_KNOBS := DATA_DIR HOSTNAME MQTT_ADDR HTTPS_ADDR AMQP_ADDR AMQP_PLAIN_ADDR HTTP_ADDR SCRIPT_ROOT SIMULATOR DEVICES PREFIX LOG_LEVEL
localdev_knobs_given = $(foreach k,$(LOCALDEV_KNOBS),$(if $(filter command line,$(origin $(k))),$(k)))
localdev_env = $(foreach k,$(localdev_knobs_given),LOCALDEV_$(k)=$(call shell_quote,$($(k))))
shell_quote = '$(subst ','\'',$(1))'

## test: lint, then every test in both modules, with the race detector (fuzz seed corpora included).
## The Node.js SDK conformance run comes last and verbose, so that it shows what it checked or why it skipped.
test: lint
	$(GO) test -race -count=1 -timeout 5m $$($(GO) list ./... | grep -v '/conformance$$')
	cd simulator && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...
	$(GO) test -race -count=1 -timeout 5m -v ./conformance

## lint: gofmt, go vet and staticcheck on both modules (staticcheck comes from the module proxy, pinned here)
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@unformatted=$$(gofmt -l . | grep -v '/node_modules/'); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	cd simulator && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

## build: bin/{localhub,localdev,handler,simulator} for this machine and three app roots: dist/app
## to deploy (static linux/amd64 handler), dist/func for func start and dist/local for make run
## (both with this machine's handler: handler.exe on Windows, named so in their host.json)
build: func-app
	$(GO) build -o $(BIN)/localhub$(EXE) ./cmd/localhub
	$(GO) build -o $(BIN)/localdev$(EXE) ./cmd/localdev
	cd simulator && $(GO) build -o $(abspath $(BIN))/simulator$(EXE) ./cmd/simulator
	$(call app_root,$(APP),)
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags='-s -w' -o $(APP)/handler ./cmd/handler
	chmod 0755 $(APP)/handler
	$(call app_root,$(LOCAL),$(EXE))
	cp $(BIN)/handler$(EXE) $(LOCAL)/

## func-app: dist/func, the app root for `func start --script-root dist/func` on this machine,
## with local.settings.json when the repository root has one
func-app:
	$(GO) build -o $(BIN)/handler$(EXE) ./cmd/handler
	$(call app_root,$(FUNC),$(EXE))
	cp $(BIN)/handler$(EXE) $(FUNC)/
	@if [ -f local.settings.json ]; then cp local.settings.json $(FUNC)/; fi

# app_root DIR,EXE: a fresh app root in DIR with host.json and the function
# folders; host.json's defaultExecutablePath gets the suffix EXE, since the
# Functions host starts exactly the file it names.
define app_root
rm -rf $(1) && mkdir -p $(1)
sed 's/"defaultExecutablePath": "handler"/"defaultExecutablePath": "handler$(2)"/' host.json > $(1)/host.json
for f in $(FUNCTIONS); do d=$$(basename $$(dirname $$f)); mkdir -p $(1)/$$d && cp $$f $(1)/$$d/; done
endef

## package: the deployment zip dist/app.zip from dist/app
package: build
	GO=$(GO) scripts/package.sh $(APP) $(DIST)/app.zip

## bench: every benchmark of both modules (1,000-device benchmarks included; the 10,000-device scenarios are make perf)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...
	cd simulator && $(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...

## perf: the scale scenarios at 1,000 and 10,000 devices, each figure against its floor measured in the same run
## (hub and simulator memory per device, connect time, direct methods against a bare mochi-mqtt broker, the
## processor), printed as the markdown table of docs/performance.md; about ten minutes. PERF_FLAGS adds flags
## (go run ./cmd/perf -h), e.g. make perf PERF_FLAGS='-devices 2000 -out perf.md'
perf:
	$(GO) run ./cmd/perf $(PERF_FLAGS)

## fuzz: run each fuzz target of both modules for FUZZTIME (default 30s), then the hub's
## invariants test (random REST and MQTT operations) for FUZZTIME with a fresh seed
FUZZTIME ?= 30s
fuzz:
	@for mod in . simulator; do \
	  for pkg in $$(cd $$mod && $(GO) list ./...); do \
	    for f in $$(cd $$mod && $(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	      echo "== $$pkg $$f"; (cd $$mod && $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg) || exit 1; \
	    done; \
	  done; \
	done
	@echo "== ./localhub TestInvariants"
	$(GO) test -race -count=1 -v -run '^TestInvariants$$' -timeout 0 ./localhub -invariants.seed=0 -invariants.duration=$(FUZZTIME)

## conformance-node: only the Node.js SDK conformance run (part of test), failing rather than skipping
conformance-node:
	GO=$(GO) scripts/conformance-node.sh

clean:
	rm -rf $(BIN) $(DIST) conformance/node/node_modules
