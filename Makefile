# alig-train -- top-level Makefile
#
#   make              build bin/alig-train (installs missing Debian packages first)
#   make run          train the main job: launch/fashion-mnist-mlp.ini on 2 ranks
#   make check        build and run the whole test suite (SUITE=name: one suite)
#   make sanitize     the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make reference    regenerate the PyTorch reference fixtures (tests/reference/README.md)
#   make bench        speed against PyTorch and the GEMM-only limit (docs/performance.md)
#   make fuzz         libFuzzer targets for the config parser and data readers,
#                     FUZZ_SECONDS (default 60) each
#   make install      copy alig-train to $(PREFIX)/bin
#   make clean
#
# Knobs: SAN=1 (sanitizer build in build-san/), NP=2 (ranks for `make run`),
#        ARGS="--set run.max_steps=100" (alig-train options for `make run`),
#        CONFIG=launch/fashion-mnist-mlp.ini, PREFIX=/usr/local, NO_DEPS=1
#        (skip the package check), BUILD=dir and BIN=dir (where objects and
#        binaries go; bin/alig-train by default), FUZZ_BUILD=dir (the fuzz
#        targets, their corpora and crashes; build-fuzz/ by default).

CC      := mpicc
PREFIX  ?= /usr/local
NP      ?= 2
CONFIG  ?= launch/fashion-mnist-mlp.ini
VERSION := 0.1.0

ifeq ($(SAN),1)
BUILD   ?= build-san
BIN     ?= $(BUILD)/bin
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
BUILD   ?= build
BIN     ?= bin
OPT     := -O3 -g
endif

# pkg-config is evaluated lazily (recursive '='), after `deps` has run.
PKGS     = hdf5 inih openblas zlib
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LIBS   = $(shell pkg-config --libs check)

CFLAGS  ?=
CFLAGS  += -std=c11 -D_GNU_SOURCE -ffp-contract=off $(OPT) -Wall -Wextra -Wshadow -Wno-unused-parameter \
           -Iinclude -Isrc -DALIG_VERSION='"$(VERSION)"' $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lm

LIB_SRC := $(wildcard src/*.c)
LIB_SRC := $(filter-out src/main.c,$(LIB_SRC))
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
LIB     := $(BUILD)/libalig.a

TEST_SRC := $(wildcard tests/check_*.c)
TEST_OBJ := $(TEST_SRC:tests/%.c=$(BUILD)/obj/tests/%.o)
TEST_BIN := $(BUILD)/tests/check_alig
MPI_TEST_SRC := $(wildcard tests/mpi_*.c)
MPI_TEST_BIN := $(MPI_TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all build deps run check sanitize install clean tests fuzz fuzz-build bench reference

all: deps
	@$(MAKE) --no-print-directory build

deps:
	@[ "$(NO_DEPS)" = 1 ] || launch/install-deps.sh --test

build: $(BIN)/alig-train

$(BUILD)/obj/%.o: src/%.c $(wildcard include/alig/*.h src/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/tests/%.o: tests/%.c $(wildcard include/alig/*.h src/*.h tests/*.h) | $(BUILD)/obj/tests
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	ar rcs $@ $^

$(BIN)/alig-train: $(BUILD)/obj/main.o $(LIB) | $(BIN)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(TEST_BIN): $(TEST_OBJ) $(LIB) | $(BUILD)/tests
	$(CC) $(CFLAGS) $(TEST_OBJ) $(LIB) $(CHECK_LIBS) $(LDLIBS) -o $@

$(BUILD)/tests/mpi_%: tests/mpi_%.c $(LIB) $(wildcard include/alig/*.h tests/*.h) | $(BUILD)/tests
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/obj $(BUILD)/obj/tests $(BUILD)/tests $(BIN):
	mkdir -p $@

tests: $(BIN)/alig-train $(TEST_BIN) $(MPI_TEST_BIN) $(BUILD)/tests/gemm_limit $(BUILD)/tests/allreduce_bench \
       $(BUILD)/tests/optim_bench $(BUILD)/tests/gemm_calls.so

# an LD_PRELOAD library timing a program's cblas_sgemm calls (tests/bench/gemm_calls.c)
$(BUILD)/tests/gemm_calls.so: tests/bench/gemm_calls.c | $(BUILD)/tests
	$(CC) $(CFLAGS) -shared -fPIC $< -ldl -lpthread -o $@

$(BUILD)/tests/%: tests/bench/%.c $(LIB) | $(BUILD)/tests
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

# Benchmarks against PyTorch (python3-torch) and the GEMM-only limit: docs/performance.md.
# BENCH_REPEATS runs per setting, BENCH_STEPS steps per run; needs a quiet machine.
BENCH_REPEATS ?= 5
BENCH_STEPS ?= 60
bench: deps
	@$(MAKE) --no-print-directory tests
	@/usr/bin/python3 -c 'import torch' 2>/dev/null || apt-get install -y -qq python3-torch python3-numpy
	ALIG_BUILD=$(BUILD) ALIG_BIN=$(BIN) tests/bench/run-bench.sh $(BENCH_REPEATS) $(BENCH_STEPS)

run: deps
	@$(MAKE) --no-print-directory build
	launch/run.sh -np $(NP) $(CONFIG) $(ARGS)

# The test suite. tests/run-tests.sh finds the binaries through these variables.
check: deps
	@$(MAKE) --no-print-directory tests
	ALIG_BUILD=$(BUILD) ALIG_BIN=$(BIN) ALIG_SANITIZE=$(SAN) tests/run-tests.sh $(SUITE)

sanitize: deps
	@$(MAKE) --no-print-directory SAN=1 check

# The reference suite's fixtures, from PyTorch (Debian's python3-torch and python3-h5py,
# hence /usr/bin/python3). CI does not run this: it reads the committed files.
reference:
	@/usr/bin/python3 -c 'import torch, h5py' 2>/dev/null || { echo "make reference needs" \
	    "python3-torch and python3-h5py: apt-get install python3-torch python3-h5py"; exit 1; }
	/usr/bin/python3 tests/reference/gen_reference.py

# Fuzzing: clang's libFuzzer with ASan+UBSan over the parsers (no MPI needed);
# fuzz_hdf5 is structured (it builds valid HDF5 files): docs/testing.md.
FUZZ_SECONDS ?= 60
FUZZ_BUILD ?= build-fuzz
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_LIB_SRC := src/config.c src/model_spec.c src/data.c src/data_cifar.c src/data_gz.c src/data_hdf5.c \
                src/error.c src/rng.c
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)

fuzz:
	@[ "$(NO_DEPS)" = 1 ] || launch/install-deps.sh --fuzz
	@$(MAKE) --no-print-directory fuzz-build
	ALIG_FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run-fuzz.sh $(FUZZ_SECONDS)

fuzz-build: $(FUZZ_BIN)

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_SRC) $(wildcard include/alig/*.h src/*.h)
	@mkdir -p $(FUZZ_BUILD)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
	    $(PKG_CFLAGS) $< $(FUZZ_LIB_SRC) $(PKG_LIBS) -lm -o $@

install: build
	install -D -m 0755 bin/alig-train $(DESTDIR)$(PREFIX)/bin/alig-train

clean:
	rm -rf build build-san build-fuzz bin
