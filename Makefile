# docpipe — see README.md.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2

.PHONY: build run test lint bootstrap clean docs screenshots

build:
	$(GO) build -o bin/docpipe ./cmd/docpipe

# Install what running needs (Postgres, pgvector), then `docpipe dev`: private Postgres, twins, API, two workers, samples/
# ingested through the API; ARGS=--once exits after the ingest (0 = every sample complete).
run:
	scripts/run $(ARGS)

bootstrap:
	scripts/bootstrap

# Bootstrap what is missing, start a private Postgres, run every test, stop it.
test: bootstrap
	scripts/test

# Regenerate the configuration table in README.md from the config schema.
docs: build
	bin/docpipe config docs --write README.md

# Regenerate the dashboard screenshots in docs/img/ with the browser test.
screenshots: bootstrap
	DOCPIPE_SCREENSHOTS=$(CURDIR)/docs/img scripts/test -run TestDashboardInBrowser ./cmd/docpipe/

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

clean:
	rm -rf bin .docpipe
