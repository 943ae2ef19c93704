# Included by the main Makefile (-include bench/bench.mk); uses its $(PY), $(VENV) and install /
# models-if-absent targets.
.PHONY: bench bench-smoke bench-tools bench-peers bench-loadgen bench-oip models-mobilenet

# The C load generators from Debian (h2load: unary gRPC; wrk: HTTP); tests/bench needs them too.
bench-loadgen:
	@missing=""; for tool in h2load wrk; do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "== installing Debian's nghttp2-client and wrk (missing:$$missing)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client wrk >/dev/null) || exit 1; \
	  else echo "missing:$$missing - install Debian's nghttp2-client and wrk"; exit 1; fi; fi

# The peers (BentoML, Ray Serve, KServe), each in a venv of its own (.venv-<peer>) from
# bench/baselines/requirements/<peer>.txt: never beside the stack (kserve holds protobuf < 7, the stack runs 7),
# so `make bench` never changes the environment it measures (bench/peer_envs.py). Only each peer venv's own pip
# installs peer packages; the stack's venv gets the bench extra alone (py-spy).
PEERS := bentoml ray kserve
PEER_VENV_STAMPS := $(foreach peer,$(PEERS),.venv-$(peer)/.installed)
$(PEER_VENV_STAMPS): .venv-%/.installed: bench/baselines/requirements/%.txt
	@test -x .venv-$*/bin/python || $(PYTHON) -m venv .venv-$*
	.venv-$*/bin/python -m pip install --upgrade --quiet pip
	.venv-$*/bin/python -m pip install --quiet -r bench/baselines/requirements/$*.txt
	@touch $@

bench-peers: $(PEER_VENV_STAMPS)  ## the peers' own venvs (.venv-bentoml, .venv-ray, .venv-kserve)

bench-tools: install bench-loadgen bench-peers
	@test -x $(VENV)/bin/py-spy || $(PY) -m pip install --quiet -e '.[bench]'

# The real-size model (issue 30), published once through the stack's own export path (bench/mobilenet.py):
# MobileNetV2 with random weights, 2-4 minutes on 2 cores. The bench copies the latest version.
models-mobilenet: install
	@if ! ls -d models/mobilenet/[0-9]* >/dev/null 2>&1; then \
	  mkdir -p .run && echo "== publishing MobileNetV2 (random weights) through python -m export publish" && \
	  TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m bench.mobilenet keras .run/mobilenet.keras && \
	  TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m export publish .run/mobilenet.keras --name mobilenet --models-dir models; \
	fi

bench: bench-tools models-if-absent models-mobilenet  ## measure the serving path (~6 min): bench/results/<date>.json, latest.md, latest.png
	$(PY) -m bench

bench-smoke: bench-tools models-if-absent  ## the bench harness end to end at a tiny scale (results in bench/results/smoke)
	$(PY) -m bench --smoke --results-dir bench/results/smoke

bench-oip: install  ## OIP binary data vs JSON on the REST port (~1 min): bench/results/oip-binary.{json,md,png}
	$(PY) -m bench.oip_binary
