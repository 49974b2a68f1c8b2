# Fuzzing (docs/security.md, "Fuzzing"); the main Makefile includes this file (`include mk/fuzz.mk`).
#   make fuzz                          - every harness in fuzz/ for FUZZ_RUNS inputs (1,000,000)
#   make fuzz FUZZ_RUNS=20000          - a shorter pass
#   make fuzz FUZZ_TARGETS="wire mse"  - some targets only;  make fuzz-wire  - one target
#   make -j2 fuzz                      - two targets at a time (each harness is one process)
# A crash (any exception but the parser's declared error, or a hang over FUZZ_TIMEOUT s) fails
# the target; the input is saved as build/fuzz/<target>-crash-* and reproduces with
#   .venv/bin/python -m fuzz.fuzz_<target> build/fuzz/<target>-crash-<sha1>
# New interesting inputs go to build/fuzz/<target>/; tests/corpus/<target>/ is only read.
FUZZ_RUNS    ?= 1000000
FUZZ_TIMEOUT ?= 30
FUZZ_WORK    ?= build/fuzz
FUZZ_FLAGS   ?=
FUZZ_TARGETS ?= bencode metainfo magnet wire extension tracker_http tracker_udp krpc mse utp \
                utp_conn ipfilter

.PHONY: fuzz $(addprefix fuzz-,$(FUZZ_TARGETS))

$(VENV)/.installed-fuzz: $(VENV)/.installed-test
	$(PIP) install -q 'atheris>=3.0'
	touch $@

fuzz: $(addprefix fuzz-,$(FUZZ_TARGETS))

$(addprefix fuzz-,$(FUZZ_TARGETS)): fuzz-%: $(VENV)/.installed-fuzz
	@mkdir -p $(FUZZ_WORK)/$*
	$(PY) -m fuzz.fuzz_$* -runs=$(FUZZ_RUNS) -timeout=$(FUZZ_TIMEOUT) -print_final_stats=1 \
		-artifact_prefix=$(FUZZ_WORK)/$*- $(FUZZ_FLAGS) $(FUZZ_WORK)/$* tests/corpus/$*
