# The two commands a newcomer needs are `make run` and `make test`; the other targets are the
# pipeline stages the Jenkinsfile calls, each runnable on a laptop.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Named by the content of the dependency files, not their mtime: a fresh checkout (Jenkins, a
# workspace sharing this .venv) of the same dependencies does not reinstall.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)

export MODEL_STORE ?= store
PORT ?= 8080

.PHONY: help venv checkov-venv run serve train-default test test-fast test-e2e lint bench exit-codes \
        system-tools

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

$(STAMP):
	@echo "installing the pinned dependencies into $(VENV) (about 2 minutes the first time)..."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[deploy,dev,report,compile]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the pinned dependencies

train-default: $(STAMP) ## train and publish the default model unless the store has one
	$(PY) -m model train --if-empty --promote production

run: train-default ## set up, train the default model if the store has none, serve on 127.0.0.1:$PORT
	$(PY) -m model list
	@echo "serving $${MODEL_NAME:-the default model} from $(MODEL_STORE) on http://127.0.0.1:$(PORT)"
	PORT=$(PORT) exec $(BIN)/gunicorn --config service/gunicorn.conf.py 'service.wsgi:app'

# checkov (the CloudFormation scanner) has pins of its own that clash with the project's: its own venv.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cat infra/checkov-constraints.txt | sha256sum | cut -c1-12)
$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r infra/checkov-constraints.txt
	rm -f $(CHECKOV_VENV)/.installed-*
	touch $(CHECKOV_STAMP)

checkov-venv: $(CHECKOV_STAMP) ## install checkov in its own virtualenv (.venv-checkov)

test: $(STAMP) $(CHECKOV_STAMP) ## run the whole test suite (lint, layering rule, every test)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest $(PYTEST_ARGS)

# What gates a model release in Jenkins: everything but the end-to-end emulation (image builds and the
# local pipeline run, marked slow), so a moto or podman upgrade cannot block shipping a model.
test-fast: $(STAMP) $(CHECKOV_STAMP) ## the suite without the slow end-to-end emulation (Jenkins' Test stage)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -m 'not slow' $(PYTEST_ARGS)

test-e2e: $(STAMP) ## only the slow end-to-end emulation: image builds, the local pipeline run (nightly)
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP) ## ruff and the layering rule (product code never imports standin/)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

system-tools: ## install the system tools the whole suite needs, with apt (run as root)
	scripts/install-system-tools

exit-codes: ## the exit codes of every command (model/exit_codes.py), as the README quotes them
	@$(PYTHON) -m model.exit_codes

bench: $(STAMP) ## benchmark the service vs in-process predict_proba and a FastAPI peer (needs wrk)
	$(PY) -m bench --runs 5 --seconds 6 --out bench/results.md --json bench/results.json

# ---- train pipeline stages (Jenkinsfile: Train) ---------------------------------------------
CANDIDATE ?= build/candidate
# Which model of the training plan (model/training.toml) to train; empty: its first entry.
TRAIN_MODEL ?=
GATE_ARGS ?=

.PHONY: train gate publish promote
train: $(STAMP) ## train the plan's model (model/training.toml, TRAIN_MODEL) into $(CANDIDATE), with report.html
	rm -rf $(CANDIDATE)
	$(PY) -m model train --plan model/training.toml $(if $(TRAIN_MODEL),--model $(TRAIN_MODEL)) --out $(CANDIDATE)

gate: $(STAMP) ## quality gate: the candidate against the current production model
	$(PY) -m model gate $(CANDIDATE) $(GATE_ARGS)

publish: $(STAMP) ## publish the candidate as a new immutable version (no alias moved)
	$(PY) -m model publish $(CANDIDATE) $(GATE_ARGS) --version-file $(CANDIDATE)/published-version

promote: $(STAMP) ## move the production alias to the version `make publish` wrote
	$(PY) -m model promote "$$(cat $(CANDIDATE)/published-version)" --alias production $(GATE_ARGS)

# ---- deploy pipeline stages (Jenkinsfile: Deploy) -------------------------------------------
# Each target is one script (README: operations). Variables come from the environment: AWS_REGION,
# ECR_REPOSITORY, ECS_CLUSTER, ECS_SERVICE, SERVICE_URL, MODEL_STORE, BASE_IMAGE, DEPLOY_TEMPLATE.
IMAGE_TAG ?= $(shell git rev-parse --short=12 HEAD)
IMAGE_BUILD_ARGS ?=
DEPLOY_TEMPLATE ?=
ROLLOUT_ARGS ?=

.PHONY: image smoke push deploy rollout-model
image: ## build the service image, tagged with the git commit (podman or docker)
	scripts/build-image --tag $(IMAGE_TAG) $(IMAGE_BUILD_ARGS)

smoke: $(STAMP) ## run the built image against $(MODEL_STORE): /ready, /model and a prediction
	scripts/smoke-image --tag $(IMAGE_TAG) --store $(MODEL_STORE)

push: $(STAMP) ## push the image to ECR ($(ECR_REPOSITORY):$(IMAGE_TAG)) and print its digest
	scripts/push-image --tag $(IMAGE_TAG)

deploy: $(STAMP) ## roll the pushed image out to ECS (model kept), verify, roll back on failure
	scripts/rollout ecs --image "$$ECR_REPOSITORY:$(IMAGE_TAG)" \
	  $(if $(DEPLOY_TEMPLATE),--template $(DEPLOY_TEMPLATE)) $(ROLLOUT_ARGS)

# Promote and roll out are one unit: the rollout moves the alias and, on any failure, moves it back
# together with the task definition, so the alias never names a model no task serves.
rollout-model: $(STAMP) ## move production to the published version and roll it out to ECS (same image)
	@version="$$(cat $(CANDIDATE)/published-version 2>/dev/null)"; \
	if [[ -z "$$version" ]]; then \
	  echo "error: no published version in $(CANDIDATE)/published-version (run make publish)" >&2; exit 4; fi; \
	echo "scripts/rollout ecs --promote $$version --store $(MODEL_STORE) $(ROLLOUT_ARGS)"; \
	scripts/rollout ecs --promote "$$version" --store $(MODEL_STORE) $(ROLLOUT_ARGS)

# ---- local runs of whole pipelines -----------------------------------------------------------
# The Jenkinsfile's stages, in its order, against a moto server on 127.0.0.1, a local registry bridged
# into its ECR, and a local ECS agent running the pushed image under podman (README: Jenkins).
PIPELINE_LOCAL_ARGS ?=

.PHONY: pipeline-local jenkins-check
pipeline-local: $(STAMP) ## run the Jenkinsfile's pipelines locally (PIPELINE_LOCAL_ARGS='--pipeline train')
	scripts/pipeline-local $(PIPELINE_LOCAL_ARGS)

jenkins-check: $(STAMP) ## parse the Jenkinsfile and print its dry run: stages, when, commands
	scripts/pipeline-local --plan $(PIPELINE_LOCAL_ARGS)

# ---- infrastructure pipeline stages (Jenkinsfile: Infra) -------------------------------------
# scripts/stack (README: operations). STACK_NAME and STACK_PARAMS ('--param K=V ...') select the stack.
STACK_DIR ?= build/stack
STACK_PARAMS ?=

.PHONY: stack-lint stack-plan stack-deploy stack-smoke
stack-lint: $(STAMP) $(CHECKOV_STAMP) ## render the stack, then cfn-lint and checkov it
	scripts/stack render --out $(STACK_DIR)/template.json
	$(BIN)/cfn-lint $(STACK_DIR)/template.json
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov -f $(STACK_DIR)/template.json --framework cloudformation \
	  --skip-download --compact --quiet

stack-plan: $(STAMP) ## make the stack's change set and keep it for review in $(STACK_DIR)
	scripts/stack plan --out $(STACK_DIR) --no-fail-on-empty-changeset $(STACK_PARAMS)

stack-deploy: $(STAMP) ## execute the reviewed change set ($(STACK_DIR)/plan.json) and wait
	scripts/stack deploy --plan $(STACK_DIR)/plan.json --no-fail-on-empty-changeset

stack-smoke: $(STAMP) ## the stack's service URL answers /ready, /model and a prediction
	scripts/stack smoke
