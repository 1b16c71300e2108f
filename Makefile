# The two commands a newcomer needs are `make run` and `make test`; the other targets are the
# pipeline stages the Jenkinsfile calls, each runnable on a laptop.
#
# `make help` lists the targets from this file, in its order: a `##@ Group` line starts a group and
# the `## ` comment after a target is its description (plain words: no variables, make does not
# expand them there).
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
# `make run` writes the gunicorn master's pid here, for `scripts/rollout local --pidfile`.
PIDFILE ?= build/gunicorn-$(PORT).pid

.PHONY: help venv checkov-venv run serve train-default test test-fast test-e2e lint bench bench-score profile exit-codes \
        system-tools bench-capture

$(STAMP):
	@echo "installing the pinned dependencies into $(VENV) (about 2 minutes the first time)..."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[deploy,dev,report,compile]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# checkov (the CloudFormation scanner) has pins of its own that clash with the project's: its own venv.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cat infra/checkov-constraints.txt | sha256sum | cut -c1-12)
$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r infra/checkov-constraints.txt
	rm -f $(CHECKOV_VENV)/.installed-*
	touch $(CHECKOV_STAMP)

##@ Run (all a newcomer needs: make run, then make test)

run: train-default ## set up .venv, train the default model if the store has none, serve it on 127.0.0.1:8080 (PORT)
	$(PY) -m model list
	@echo "serving $${MODEL_NAME:-the default model} from $(MODEL_STORE) on http://127.0.0.1:$(PORT) (pid file $(PIDFILE); Ctrl-C stops it)"
	@mkdir -p $(dir $(PIDFILE))
	PORT=$(PORT) PIDFILE=$(PIDFILE) exec $(BIN)/gunicorn --config service/gunicorn.conf.py 'service.wsgi:app'

test: $(STAMP) $(CHECKOV_STAMP) ## the whole test suite: lint, the layering rule, every test (PYTEST_ARGS adds pytest options)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest $(PYTEST_ARGS)

help: ## this list, grouped, in the order a newcomer needs the targets
	@echo "usage: make TARGET   (variables such as PORT=8081 go after it: make run PORT=8081)"
	@awk 'BEGIN { FS = ":.*## " } \
	  /^##@ / { printf "\n%s\n", substr($$0, 5); next } \
	  /^[a-zA-Z0-9_-]+:.*## / { printf "  make %-15s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

venv: $(STAMP) ## create .venv and install the pinned dependencies (make run does it first)

train-default: $(STAMP) ## train and publish the default model (digits) and make it production, unless the store has a model
	@echo "training the default model (digits, about 10 s) unless $(MODEL_STORE) holds a model already..."
	$(PY) -m model train --if-empty --promote production

##@ Develop and test

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

checkov-venv: $(CHECKOV_STAMP) ## install checkov in its own virtualenv, .venv-checkov (make test does it)

exit-codes: ## the exit codes of every command (model/exit_codes.py), as the README quotes them
	@$(PYTHON) -m model.exit_codes

bench: $(STAMP) ## benchmark the service against in-process prediction, three peers and the floor (needs wrk; about 20 minutes)
	$(PY) -m bench --runs 3 --seconds 5 --out bench/results.md --json bench/results.json

bench-score: $(STAMP) ## batch scoring (python -m model score) against in-process prediction, digits and a forest (about 3 minutes)
	$(PY) -m bench.scoring --model digits
	$(PY) -m bench.scoring --model forest

bench-capture: $(STAMP) ## what prediction capture costs the service: throughput with capture off and on
	$(PY) -m bench.capture

profile: $(STAMP) ## where a worker's CPU goes per request, from py-spy samples of the live service (digits)
	$(PY) -m bench.profile --model digits --json bench/profile.json

# ---- train pipeline stages (Jenkinsfile: Train) ---------------------------------------------
##@ Train pipeline stages (Jenkins' Train; to train and publish by hand: .venv/bin/python -m model train)
CANDIDATE ?= build/candidate
# Which model of the training plan (model/training.toml) to train; empty: its first entry.
TRAIN_MODEL ?=
# Data to train the plan's recipe on instead of the plan's dataset (a .csv path, an s3:// CSV or a
# built-in name); Jenkins' TRAIN_DATASET parameter, which a retrain on drift sets. Empty: the plan's.
# Read by the shell from the environment, never pasted into the command: a build parameter is text.
export TRAIN_DATASET ?=
GATE_ARGS ?=

.PHONY: train gate publish promote
train: $(STAMP) ## train the plan's model (model/training.toml; TRAIN_MODEL) into a candidate folder, build/candidate: publishes nothing
	rm -rf $(CANDIDATE)
	$(PY) -m model train --plan model/training.toml $(if $(TRAIN_MODEL),--model $(TRAIN_MODEL)) \
	  $(if $(TRAIN_DATASET),--dataset "$$TRAIN_DATASET") --out $(CANDIDATE)

gate: $(STAMP) ## the quality gate: the candidate against the current production model (GATE_ARGS)
	$(PY) -m model gate $(CANDIDATE) $(GATE_ARGS)

publish: $(STAMP) ## publish the candidate as a new immutable version (no alias moves)
	$(PY) -m model publish $(CANDIDATE) $(GATE_ARGS) --version-file $(CANDIDATE)/published-version

promote: $(STAMP) ## move the production alias to the version make publish wrote (the service is not reloaded)
	$(PY) -m model promote "$$(cat $(CANDIDATE)/published-version)" --alias production $(GATE_ARGS)

# Training in the cloud (README: Training in the cloud). Settings from the stack's outputs: ECS_CLUSTER,
# TRAIN_TASK_FAMILY, TRAIN_SUBNETS, TRAIN_SECURITY_GROUPS; TRAIN_TASK_ARGS adds scripts/train-task options.
TRAIN_TASK_ARGS ?=
TRAIN_IMAGE_TAG ?= train-$(IMAGE_TAG)

.PHONY: train-task image-train push-train
train-task: $(STAMP) ## train, gate and publish as a Fargate task (the plan's model; TRAIN_MODEL, TRAIN_TASK_ARGS); waits and prints the version
	@mkdir -p $(CANDIDATE)
	scripts/train-task $(if $(TRAIN_MODEL),--name $(TRAIN_MODEL)) $(if $(TRAIN_DATASET),--dataset "$$TRAIN_DATASET") \
	  --version-file $(CANDIDATE)/published-version $(TRAIN_TASK_ARGS)

image-train: ## build the training image (docker/Dockerfile's train target), tagged train-COMMIT
	scripts/build-image --name model-train --tag $(TRAIN_IMAGE_TAG) --target train $(IMAGE_BUILD_ARGS)

push-train: $(STAMP) ## push the training image to ECR as train-COMMIT: with the stack's trigger, that push starts a training run
	scripts/push-image --name model-train --tag $(TRAIN_IMAGE_TAG)

# ---- monitor pipeline stages (Jenkinsfile: Monitor) -----------------------------------------
##@ Monitoring: captured predictions against the training profile (Jenkins' Monitor; MONITOR_ARGS)
# python -m model monitor (docs/monitoring.md) over the last MONITOR_SINCE of captured records of the
# production model; MONITOR_ARGS adds its options (--name, --psi 0.2, ...). The report and the JSON
# land in build/monitor, which the Monitor stage archives.
MONITOR_SINCE ?= 24h
MONITOR_ARGS ?=
MONITOR_OPTIONS = --since $(MONITOR_SINCE) --report build/monitor/report.html --json build/monitor/drift.json \
  $(MONITOR_ARGS)

.PHONY: monitor monitor-check
monitor: $(STAMP) ## compare the last day of captured predictions with the training profile: exit 20 on drift
	$(PY) -m model monitor $(MONITOR_OPTIONS)

monitor-check: $(STAMP) ## the Monitor stage: as make monitor, but drift passes and writes a retrain request
	$(PY) -m deploy.drift_check -- $(MONITOR_OPTIONS)

# ---- deploy pipeline stages (Jenkinsfile: Deploy) -------------------------------------------
##@ Deploy pipeline stages (Jenkins' Deploy; against AWS: see the README's settings)
# Each target is one script (README: Pipelines (Jenkins)). Variables come from the environment: AWS_REGION,
# ECR_REPOSITORY, ECS_CLUSTER, ECS_SERVICE, SERVICE_URL, MODEL_STORE, BASE_IMAGE, DEPLOY_TEMPLATE.
IMAGE_TAG ?= $(shell git rev-parse --short=12 HEAD)
IMAGE_BUILD_ARGS ?=
DEPLOY_TEMPLATE ?=
ROLLOUT_ARGS ?=

.PHONY: image smoke push deploy rollout-model
image: ## build the service image, tagged with the git commit (podman or docker; IMAGE_BUILD_ARGS)
	scripts/build-image --tag $(IMAGE_TAG) $(IMAGE_BUILD_ARGS)

smoke: $(STAMP) ## run the built image against the store (MODEL_STORE): /ready, /model and a prediction
	scripts/smoke-image --tag $(IMAGE_TAG) --store $(MODEL_STORE)

push: $(STAMP) ## push the image to ECR (ECR_REPOSITORY, tagged with the commit) and print its digest
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

# The scoring function's image (README: Scoring files): deploy it with the stack's ScoreImage parameter.
SCORE_IMAGE_TAG ?= score-$(IMAGE_TAG)

.PHONY: image-score push-score
image-score: ## build the scoring function's Lambda image (docker/Dockerfile's score target), tagged score-COMMIT
	scripts/build-image --name model-score --tag $(SCORE_IMAGE_TAG) --target score $(IMAGE_BUILD_ARGS)

push-score: $(STAMP) ## push the scoring image to ECR as score-COMMIT and print the digest for ScoreImage
	scripts/push-image --name model-score --tag $(SCORE_IMAGE_TAG)

# ---- local runs of whole pipelines -----------------------------------------------------------
##@ Local runs of the whole pipelines (moto, a local registry and ECS agent; no AWS account)
# The Jenkinsfile's stages, in its order, against a moto server on 127.0.0.1, a local registry bridged
# into its ECR, and a local ECS agent running the pushed image under podman (README: Running the pipelines locally).
PIPELINE_LOCAL_ARGS ?=

.PHONY: pipeline-local jenkins-check
pipeline-local: $(STAMP) ## run the Jenkinsfile's pipelines on this machine, about 3.5 minutes (PIPELINE_LOCAL_ARGS)
	scripts/pipeline-local $(PIPELINE_LOCAL_ARGS)

jenkins-check: $(STAMP) ## parse the Jenkinsfile and print its dry run as JSON: stages, conditions, commands
	scripts/pipeline-local --plan $(PIPELINE_LOCAL_ARGS)

# ---- infrastructure pipeline stages (Jenkinsfile: Infra) -------------------------------------
##@ Infrastructure: the CloudFormation stack (Jenkins' Infra; STACK_NAME, STACK_PARAMS)
# scripts/stack (README: The stack; docs/stack.md). STACK_NAME and STACK_PARAMS ('--param K=V ...') select the stack.
STACK_DIR ?= build/stack
STACK_PARAMS ?=

.PHONY: stack-lint stack-plan stack-deploy stack-smoke
stack-lint: $(STAMP) $(CHECKOV_STAMP) ## render the stack (infra/stack.yaml), then cfn-lint and checkov it
	scripts/stack render --out $(STACK_DIR)/template.json
	$(BIN)/cfn-lint $(STACK_DIR)/template.json
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov -f $(STACK_DIR)/template.json --framework cloudformation \
	  --skip-download --compact --quiet

stack-plan: $(STAMP) ## make the stack's change set and keep it for review in build/stack
	scripts/stack plan --out $(STACK_DIR) --no-fail-on-empty-changeset $(STACK_PARAMS)

stack-deploy: $(STAMP) ## execute the reviewed change set (build/stack/plan.json) and wait
	scripts/stack deploy --plan $(STACK_DIR)/plan.json --no-fail-on-empty-changeset

stack-smoke: $(STAMP) ## the stack's service URL answers /ready, /model and a prediction
	scripts/stack smoke
