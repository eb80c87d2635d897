# docpipe — see README.md.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2

.PHONY: build test test-go lint bootstrap clean

build:
	$(GO) build -o bin/docpipe ./cmd/docpipe

bootstrap:
	scripts/bootstrap

# Bootstrap what is missing, start a private Postgres, run every test, stop it.
test: bootstrap
	scripts/test

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

clean:
	rm -rf bin .docpipe
