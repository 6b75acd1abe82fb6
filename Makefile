# megatron.c — build, run, test, bench.
#
#   make              ./pretrain_gpt (fp32) and ./pretrain_gpt_fp64 (the oracle)
#   make run          train the demo model on 4 ranks (installs deps, prepares data)
#   make test         the whole suite (tests/run.sh), exit code = failures
#   make bench        speed report (tools/bench.sh)
# Switches: NO_OMP=1, SANITIZE=1 (ASan+UBSan), CUDA=1 (./pretrain_gpt_cuda).

SHELL := /bin/bash
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
CC := mpicc
NVCC ?= nvcc

CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g -march=native -Wall -Wextra -Wno-unused-parameter -Iinclude
LDLIBS := -lm

# OpenBLAS: prefer the OpenMP build, whose threads cooperate with ours.
BLAS_OMP_DIR := /usr/lib/$(MULTIARCH)/openblas-openmp
BLAS_OMP_INC := /usr/include/$(MULTIARCH)/openblas-openmp
ifeq ($(NO_OMP),1)
  CFLAGS += -Wno-unknown-pragmas
  BLAS_NOTE := OpenBLAS (default alternative), OpenMP off
  LDLIBS += -lopenblas
else
  CFLAGS += -fopenmp
  ifneq ($(wildcard $(BLAS_OMP_DIR)/libopenblas.so),)
    BLAS_NOTE := OpenBLAS (OpenMP build, $(BLAS_OMP_DIR)), OpenMP on
    CFLAGS += -I$(BLAS_OMP_INC)
    LDLIBS += -L$(BLAS_OMP_DIR) -Wl,-rpath,$(BLAS_OMP_DIR) -lopenblas
  else
    BLAS_NOTE := OpenBLAS (default alternative; install libopenblas-openmp-dev for threads), OpenMP on
    LDLIBS += -lopenblas
  endif
endif
# Each switch builds into its own directory, so objects never mix.
BUILD := build
ifeq ($(NO_OMP),1)
  BUILD := $(BUILD)/noomp
endif
ifeq ($(SANITIZE),1)
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  BUILD := $(BUILD)/san
endif

SRC := $(wildcard src/*.c src/cpu/*.c)
LIBSRC := $(filter-out src/main.c,$(SRC))
HDR := $(wildcard include/*.h)
OBJ32 := $(patsubst %.c,$(BUILD)/fp32/%.o,$(LIBSRC))
OBJ64 := $(patsubst %.c,$(BUILD)/fp64/%.o,$(LIBSRC))
TESTSRC := $(wildcard tests/test_*.c)
TESTS32 := $(patsubst tests/%.c,$(BUILD)/fp32/tests/%,$(TESTSRC))
TESTS64 := $(patsubst tests/%.c,$(BUILD)/fp64/tests/%,$(TESTSRC))
TOOLS := tools/prepare_data tools/compare tools/plan tools/generate

.PHONY: all deps found run test bench clean fuzz
all: found pretrain_gpt pretrain_gpt_fp64 $(TOOLS) $(TESTS32) $(TESTS64)

# Installs missing Debian packages (no-op when present).
deps:
	@tools/install-deps.sh

found:
	@echo "make: MPI: $$(command -v mpicc >/dev/null && mpicc --showme:version 2>&1 | head -n1 || echo 'not found (run tools/install-deps.sh)')"
	@echo "make: BLAS: $(BLAS_NOTE)"
	@echo "make: nvcc: $$(command -v $(NVCC) >/dev/null && $(NVCC) --version | tail -n1 || echo 'not found') (CUDA=1 builds ./pretrain_gpt_cuda)"

$(BUILD)/fp32/%.o: %.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/fp64/%.o: %.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DMT_FP64 -c $< -o $@

$(BUILD)/libmt32.a: $(OBJ32)
	ar rcs $@ $^
$(BUILD)/libmt64.a: $(OBJ64)
	ar rcs $@ $^

pretrain_gpt: $(BUILD)/fp32/src/main.o $(BUILD)/libmt32.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)
pretrain_gpt_fp64: $(BUILD)/fp64/src/main.o $(BUILD)/libmt64.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/fp32/tests/%: tests/%.c $(BUILD)/libmt32.a tests/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(BUILD)/libmt32.a -o $@ $(LDLIBS)
$(BUILD)/fp64/tests/%: tests/%.c $(BUILD)/libmt64.a tests/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -DMT_FP64 $< $(BUILD)/libmt64.a -o $@ $(LDLIBS)

tools/%: tools/%.c $(BUILD)/libmt32.a
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(BUILD)/libmt32.a -o $@ $(LDLIBS)

run: deps all
	@tools/run-demo.sh

test: deps all
	@tests/run.sh

bench: deps all
	@tools/bench.sh

clean:
	rm -rf build pretrain_gpt pretrain_gpt_fp64 pretrain_gpt_cuda $(TOOLS)
