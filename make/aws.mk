# AWS targets: template checks, build, deploy and local invocation with the SAM CLI.
# Included by the top-level Makefile, which defines PYTHON, VENV, BIN and STAMP.
#
# The SAM CLI lives in its own virtualenv: its pins (boto3, pydantic, click) conflict with ours.

SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed
SAM_CLI_VERSION := 1.170.0
SAM_TEMPLATE := template.yaml
SAM_ENV := SAM_CLI_TELEMETRY=0
# Offline commands still want a region; deploy takes the user's (guided prompt, samconfig.toml).
SAM_OFFLINE_ENV := $(SAM_ENV) AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1}
# `sam build` (without a container) needs a python3.12 matching the functions' runtime. Where it is
# not on PATH but pyenv has it, these versions are exposed for that one command.
SAM_PYENV_VERSION ?= 3.11.7:3.12.1:3.13.0
# Used by `sam local invoke`: the functions reach the local stack (`make local-stack`: moto and the
# capture endpoint) on the host through host.docker.internal, which Linux engines only know with this
# mapping; the region is the local stack's, whatever AWS_REGION says for deploying.
SAM_LOCAL_FLAGS ?= --add-host host.docker.internal:host-gateway --region us-east-1
SAM_LOCAL_ENV := events/local-env.json

# checkov (the template's security scanner) lives in a virtualenv of its own too: its pins clash with ours.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV_VERSION := 3.3.30

$(CHECKOV_STAMP): make/aws.mk
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

$(SAM_STAMP): make/aws.mk
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	touch $(SAM_STAMP)

sam-venv: $(SAM_STAMP) ## Create the SAM CLI's own virtualenv (.venv-sam)

# tests/integration/test_template.py translates the template with the SAM CLI's aws-sam-translator
# (its pydantic pin conflicts with ours), so `make test` needs that virtualenv too.
test: $(SAM_STAMP)

validate: $(STAMP) $(SAM_STAMP) $(CHECKOV_STAMP) ## Check the template: cfn-lint, sam validate --lint, checkov (skips: .checkov.yaml)
	$(BIN)/cfn-lint $(SAM_TEMPLATE)
	$(SAM_OFFLINE_ENV) $(SAM) validate --lint --template-file $(SAM_TEMPLATE)
	$(CHECKOV) --file $(SAM_TEMPLATE) --config-file .checkov.yaml

build: $(SAM_STAMP) ## Build functions and layers into .aws-sam/ (needs Python 3.12 on PATH or in pyenv)
	@if python3.12 --version >/dev/null 2>&1; then \
		$(SAM_OFFLINE_ENV) $(SAM) build --template-file $(SAM_TEMPLATE); \
	elif command -v pyenv >/dev/null 2>&1; then \
		PYENV_VERSION=$(SAM_PYENV_VERSION) PATH="$$(pyenv root)/shims:$$PATH" \
			$(SAM_OFFLINE_ENV) $(SAM) build --template-file $(SAM_TEMPLATE); \
	else \
		echo "sam build needs python3.12 (the functions' runtime) on PATH" >&2; exit 1; \
	fi

deploy: build ## Deploy the built stack (guided the first time, then from samconfig.toml)
	@if [ -f samconfig.toml ]; then \
		$(SAM_ENV) $(SAM) deploy; \
	else \
		$(SAM_ENV) $(SAM) deploy --guided; \
	fi

require-docker:
	@docker info >/dev/null 2>&1 || { \
		echo "sam local invoke runs the functions in Docker, and no Docker engine answers here." >&2; \
		echo "Start Docker and try again, or use 'make run' / 'make test', which call the handlers directly." >&2; \
		exit 1; }

# Loopback unless told otherwise: moto has no authentication. Containers (invoke-*) reach the host
# through Docker's bridge: `make local-stack LOCAL_STACK_HOST=0.0.0.0` for them, on a trusted network.
LOCAL_STACK_HOST ?= 127.0.0.1

local-stack: $(STAMP) ## Serve moto and the capture endpoint (127.0.0.1; LOCAL_STACK_HOST=0.0.0.0 for Docker)
	$(BIN)/segsync local-stack --project demo/segsync.yml --host $(LOCAL_STACK_HOST)

invoke-planner: require-docker build ## Run the planner in Docker on events/planner-schedule.json (needs Docker)
	$(SAM_OFFLINE_ENV) $(SAM) local invoke PlannerFunction --event events/planner-schedule.json \
		--env-vars $(SAM_LOCAL_ENV) $(SAM_LOCAL_FLAGS)

invoke-sender: require-docker build ## Run the sender in Docker on events/sender-sqs.json (needs Docker)
	$(SAM_OFFLINE_ENV) $(SAM) local invoke SenderFunction --event events/sender-sqs.json \
		--env-vars $(SAM_LOCAL_ENV) $(SAM_LOCAL_FLAGS)

.PHONY: sam-venv validate build deploy require-docker local-stack invoke-planner invoke-sender
