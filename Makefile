# The two commands of the README, and their parts.
.PHONY: dev test setup build
dev:   ## run the worker locally under wrangler dev, with everything it needs
	sh scripts/dev.sh
test:  ## run every test (setup included)
	sh scripts/test.sh
setup: ## install the toolchain pieces (idempotent)
	sh scripts/setup.sh
build: ## build the worker to build/ and print the wasm size
	sh scripts/build.sh
