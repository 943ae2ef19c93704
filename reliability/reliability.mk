# `make reliability`: the reliability and security suite (reliability/) against real modelserver and gateway
# processes on 127.0.0.1 - API fuzzing, hostile uploads, bad model versions, faults, hot-swap endurance,
# soak, security. Under 15 minutes on 2 cores; writes reliability/results/{results.json,README.md}.
.PHONY: reliability
reliability: install  ## fuzzing, faults, soak, security on real processes (< 15 min) -> reliability/results
	$(PY) -m reliability
