# Fuzzing (docs/security.md, "Fuzzing"); the main Makefile includes this file (`include mk/fuzz.mk`).
#   make fuzz                          - every harness in fuzz/ for FUZZ_RUNS inputs (1,000,000),
#                                        FUZZ_JOBS targets at a time (default: one per core)
#   make fuzz FUZZ_RUNS=20000          - a shorter pass
#   make fuzz FUZZ_TARGETS="wire mse"  - some targets only;  make fuzz-wire  - one target
#   make fuzz FUZZ_ENGINE=hypothesis   - the fallback engine even where atheris is installed
# atheris (coverage-guided libFuzzer) has wheels for Linux x86_64 CPython 3.11-3.14 only; where
# `pip install` cannot get one, the same harnesses run under hypothesis (fuzz/support.py).
# A crash (any exception but the parser's declared error, or under atheris a hang over
# FUZZ_TIMEOUT s) fails the target and `make fuzz` (after the other targets finish); the input is
# saved as $(FUZZ_WORK)/<target>-crash-* and reproduces with
#   .venv/bin/python -m fuzz.fuzz_<target> $(FUZZ_WORK)/<target>-crash-<sha1>
# Each target's full output is $(FUZZ_WORK)/<target>.log; new interesting inputs go to
# $(FUZZ_WORK)/<target>/ (tests/corpus/<target>/ is only read).
FUZZ_RUNS    ?= 1000000
FUZZ_TIMEOUT ?= 30
FUZZ_WORK    ?= build/fuzz
FUZZ_FLAGS   ?=
FUZZ_JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_NICE    ?= nice -n 10
FUZZ_ENGINE  ?=
FUZZ_TARGETS ?= bencode metainfo magnet wire extension tracker_http tracker_udp krpc mse utp \
                utp_conn ipfilter

.PHONY: fuzz $(addprefix fuzz-,$(FUZZ_TARGETS))

# --only-binary: on a Python/platform without a wheel, fail in a second instead of trying to
# build libFuzzer from source; the harnesses then fall back to hypothesis (in the test extra).
$(VENV)/.installed-fuzz: $(VENV)/.installed-test
	$(PIP) install -q --only-binary atheris 'atheris>=3.0' \
		|| echo "fuzz: no atheris wheel for this Python/platform; fuzzing with hypothesis instead"
	touch $@

fuzz: $(VENV)/.installed-fuzz
	@$(MAKE) --no-print-directory -k -j$(FUZZ_JOBS) $(addprefix fuzz-,$(FUZZ_TARGETS))

$(addprefix fuzz-,$(FUZZ_TARGETS)): fuzz-%: $(VENV)/.installed-fuzz
	@mkdir -p $(FUZZ_WORK)/$*
	@echo "fuzz-$*: $(FUZZ_RUNS) runs (log: $(FUZZ_WORK)/$*.log)"
	@CCBT_FUZZ_ENGINE=$(FUZZ_ENGINE) $(FUZZ_NICE) $(PY) -m fuzz.fuzz_$* -runs=$(FUZZ_RUNS) \
		-timeout=$(FUZZ_TIMEOUT) -print_final_stats=1 -artifact_prefix=$(FUZZ_WORK)/$*- \
		$(FUZZ_FLAGS) $(FUZZ_WORK)/$* tests/corpus/$* >$(FUZZ_WORK)/$*.log 2>&1; rc=$$?; \
	grep -E 'INITED|DONE|^Done|^stat::(number_of_executed_units|average_exec_per_sec|new_units)' \
		$(FUZZ_WORK)/$*.log | sed 's/^/fuzz-$*: /'; \
	if [ $$rc -ne 0 ]; then tail -n 40 $(FUZZ_WORK)/$*.log; \
		echo "fuzz-$*: FAILED (exit $$rc); crash input: $(FUZZ_WORK)/$*-crash-*"; fi; \
	exit $$rc
