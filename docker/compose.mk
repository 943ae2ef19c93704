# Docker verbs, included by the Makefile (-include docker/compose.mk); uses its $(PY) and $(VENV).
#
#   make docker-base      the base image from Debian packages (debootstrap + docker import), for machines
#                         that cannot pull images; starts a bridge-less dockerd first if none answers
#   make docker-images    gateway, modelserver and export images (tfserve/*:$(IMAGE_TAG))
#   make compose-up       the stack, official TF Serving per model (SERVING=modelserver: our server instead);
#                         writes .env on first use and publishes any model that has no version yet
#   make compose-down     stop and remove it
#   make compose-smoke    up with our modelserver, predict through the gateway, hot-swap a version, down
.PHONY: docker-engine docker-base docker-images docker-constraints compose-env compose-models compose-up \
        compose-down compose-smoke

IMAGE_TAG ?= 0.1.0
BASE_IMAGE ?= tfserve/python:3.11-bookworm
SERVING ?= tfserving
COMPOSE_FILES := -f docker-compose.yml $(if $(filter modelserver,$(SERVING)),-f docker-compose.modelserver.yml,)
COMPOSE := docker compose $(COMPOSE_FILES)
# The classic builder: it needs no buildx plugin, which Debian's docker.io lacks.
DOCKER_BUILD := DOCKER_BUILDKIT=0 docker build --network host --build-arg BASE_IMAGE=$(BASE_IMAGE) \
                -f docker/Dockerfile

docker-engine:  ## start dockerd (no bridge/iptables) if none answers; provide `docker compose`
	@docker/dockerd.sh
	@PIP=$(VENV)/bin/pip docker/compose-plugin.sh

docker-base: docker-engine  ## build the local base image (debootstrap bookworm + python3) if absent
	@BASE_IMAGE=$(BASE_IMAGE) docker/local-base.sh

# The dependency stages are tagged too (tfserve/*-deps): untagged, they would be dangling images, which the
# prune below (meant for images a rebuild superseded) deletes, and every build would reinstall TensorFlow.
docker-images: docker-base  ## build the gateway, modelserver and export images
	@mkdir -p .run; for target in gateway-deps gateway modelserver-deps modelserver export; do \
	  echo "== image tfserve/$$target:$(IMAGE_TAG) (log: .run/docker-build-$$target.log)"; \
	  $(DOCKER_BUILD) --target $$target -t tfserve/$$target:$(IMAGE_TAG) . > .run/docker-build-$$target.log 2>&1 \
	    || { tail -n 40 .run/docker-build-$$target.log; exit 1; }; \
	done
	@docker image prune -f --filter label=org.opencontainers.image.vendor=tfserve-stack >/dev/null
	@docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' 'tfserve/*'

docker-constraints: install  ## re-pin docker/constraints.txt to the dev venv's exact versions
	@{ sed -n '1,2p' docker/constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -vi '^tfserve-stack'; } \
	  > docker/constraints.txt.tmp && mv docker/constraints.txt.tmp docker/constraints.txt

compose-env:  ## write .env from .env.example (random admin token, your uid/gid) if absent
	@if [[ ! -f .env ]]; then \
	  token=$$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))'); \
	  (umask 077; sed -e "s|^GATEWAY_ADMIN_TOKEN=.*|GATEWAY_ADMIN_TOKEN=$$token|" \
	      -e "s|^HOST_UID=.*|HOST_UID=$$(id -u)|" -e "s|^HOST_GID=.*|HOST_GID=$$(id -g)|" \
	      $(if $(DATA_DIR),-e "s|^DATA_DIR=.*|DATA_DIR=$(DATA_DIR)|",) \
	      .env.example > .env.tmp) && mv .env.tmp .env && echo "wrote .env (admin token inside)"; \
	fi

compose-models: compose-env docker-images  ## seed each model's config file; publish models without a version
	@models_dir=$${MODELS_DIR:-$$(sed -n 's/^MODELS_DIR=//p' .env)}; models_dir=$${models_dir:-./models}; \
	mkdir -p "$$models_dir/config"; \
	for m in fashion text housing; do \
	  [[ -f "$$models_dir/config/$$m.config" ]] || cp models/config/$$m.config "$$models_dir/config/" || exit 1; \
	done; \
	for m in fashion text housing; do \
	  if ! ls -d "$$models_dir/$$m"/[0-9]* >/dev/null 2>&1; then \
	    echo "== no published version of '$$m' in $$models_dir: exporting one with the export service"; \
	    $(COMPOSE) --profile export run --rm --no-deps export $$m --models-dir /models || exit 1; \
	  fi; \
	done

compose-up: compose-models  ## start the stack (SERVING=modelserver: our server in place of tensorflow/serving)
	$(COMPOSE) up -d --no-build --wait
	@$(COMPOSE) ps

# `down` interpolates the compose file too, whose GATEWAY_ADMIN_TOKEN is required: without .env (a fresh
# checkout, a machine that only ran compose-smoke) it would refuse to stop anything. It needs no real token.
compose-down:  ## stop and remove the stack's containers
	GATEWAY_ADMIN_TOKEN=$${GATEWAY_ADMIN_TOKEN:-unused-by-compose-down} $(COMPOSE) --profile export down --remove-orphans

compose-smoke: install docker-images  ## up (our modelserver) + predict + hot swap via export + down
	PYTHONPATH=$(CURDIR) $(PY) docker/compose_smoke.py
