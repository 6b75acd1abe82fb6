# megatron.c — build, run, test, bench.
#
#   make              ./pretrain_gpt (fp32) and ./pretrain_gpt_fp64 (the oracle)
#   make run          train the demo model on 4 ranks (installs deps, prepares data)
#   make test         the whole suite (tests/run.sh), exit code = failures
#   make bench        speed report (tools/bench.sh)
#   make fuzz         libFuzzer harnesses (tests/fuzz), FUZZ_SECONDS each (docs/fuzzing.md)
# Switches: NO_OMP=1, SANITIZE=1 (ASan+UBSan), CUDA=1 (./pretrain_gpt_cuda).
# SANITIZE=1 builds everything under build/san (trainers build/san/pretrain_gpt,
# build/san/pretrain_gpt_fp64, tools under build/san/tools), never over the
# root binaries; `make test SANITIZE=1` runs the sanitizer suite on them.

SHELL := /bin/bash
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
CC := mpicc
# nvcc from PATH, else CUDA's default install directory.
NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc),nvcc)

# -fno-math-errno -fno-trapping-math change no result (no errno, no FP traps
# are used) and let GCC vectorise sqrt, exp and the if-converted kernels.
# -fvect-cost-model=dynamic: GCC 12's -O2 vectorises only loops that need no
# runtime checks or epilogue ("very cheap"), which left most elementwise
# kernels scalar. The dynamic model vectorises them too; it changes no bit
# (no reassociation: the FP reductions keep their written order, and -std=c11
# keeps contraction off). Side by side (tools/bench-opts.sh, 2026-12-02,
# native kernels): a 124M step 3% and a small-shape step 2-10% faster on a
# quiet machine (5% and 9% under load). Clang has no such flag (and no
# such limit).
VECT := $(if $(findstring clang,$(CC)),,-fvect-cost-model=dynamic)
# EXTRA_CFLAGS: a benchmark's variant build (tools/bench-opts.sh), into its own BUILD.
# (from the command line only: an exported EXTRA_CFLAGS is not picked up)
EXTRA_CFLAGS :=
# MARCH=x86-64-v3 builds binaries for another machine's CPU (tools/device-bundle.sh).
MARCH ?= native
CFLAGS := -std=c11 -D_GNU_SOURCE -O2 $(VECT) -g -march=$(MARCH) -fno-math-errno -fno-trapping-math -Wall -Wextra -Wno-unused-parameter \
          -Werror=incompatible-pointer-types -Werror=implicit-function-declaration -Iinclude $(EXTRA_CFLAGS)
# Header dependencies come from the compiler: every object and test binary
# writes a .d file next to it (-MMD), with empty targets for headers (-MP) so
# a deleted header is not an error. Editing any header, src/cpu/vmath.h
# included, rebuilds exactly what includes it.
DEPFLAGS = -MMD -MP -MF $@.d
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
# Binaries of a sanitized build stay in its directory: a sanitized
# ./pretrain_gpt would slow (and, under mpirun, break) every later plain run.
BIN :=
TEST_ENV :=
ifeq ($(SANITIZE),1)
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  BUILD := $(BUILD)/san
  BIN := $(BUILD)/
  TEST_ENV := MT_SANITIZE=1 BUILD=$(BUILD)
endif

# The compiler's flags as it expands them (-march=native into this CPU's
# feature list, --param cache sizes included), kept in $(BUILD)/cflags and
# rewritten only when they change. Every C object depends on it, so a build
# tree that meets another CPU (a new VM, a shared home on another host) or
# other MARCH / EXTRA_CFLAGS is rebuilt, not linked from objects made for
# another machine (which die of SIGILL; src/isa.c names what is missing).
FLAGS_STAMP := $(BUILD)/cflags
$(shell sh tools/flags-stamp.sh $(FLAGS_STAMP) $(CC) $(CFLAGS))
CDEPS := Makefile $(FLAGS_STAMP)

SRC := $(wildcard src/*.c src/cpu/*.c)
LIBSRC := $(filter-out src/main.c,$(SRC))
OBJ32 := $(patsubst %.c,$(BUILD)/fp32/%.o,$(LIBSRC))
OBJ64 := $(patsubst %.c,$(BUILD)/fp64/%.o,$(LIBSRC))
TESTSRC := $(wildcard tests/test_*.c)
TESTS32 := $(patsubst tests/%.c,$(BUILD)/fp32/tests/%,$(TESTSRC))
TESTS64 := $(patsubst tests/%.c,$(BUILD)/fp64/tests/%,$(TESTSRC))
TOOL_NAMES := tools/prepare_data tools/compare tools/plan tools/generate tools/allreduce_bench tools/metrics-diff tools/fused_bench tools/progress_bench
TOOLS := $(addprefix $(BIN),$(TOOL_NAMES))
TRAINERS := $(BIN)pretrain_gpt $(BIN)pretrain_gpt_fp64

# The backend op test (tests/backend_ops.c): the fp64 CPU build writes the
# oracle, the fp32 CPU build and the CUDA build check themselves against it.
OPTEST := $(BUILD)/fp64/tests/backend_ops $(BUILD)/fp32/tests/backend_ops

# The LD_PRELOAD fault injector of tests/suite_save_faults.sh (plain cc, no
# sanitizer: it interposes libc calls of the plain ./pretrain_gpt).
FAULT_SHIM := build/fault_shim.so
# tools/gemm_profile.so: LD_PRELOAD it to time a run's GEMMs shape by shape.
GEMM_PROFILE := tools/gemm_profile.so

.PHONY: all deps found run test bench clean fuzz fuzz-build cuda
all: found $(TRAINERS) $(TOOLS) $(TESTS32) $(TESTS64) $(OPTEST) $(FAULT_SHIM) $(GEMM_PROFILE) $(if $(filter 1,$(CUDA)),cuda)

# Installs missing Debian packages (no-op when present).
deps:
	@tools/install-deps.sh

found:
	@echo "make: MPI: $$(command -v mpicc >/dev/null && mpicc --showme:version 2>&1 | head -n1 || echo 'not found (run tools/install-deps.sh)')"
	@echo "make: BLAS: $(BLAS_NOTE)"
	@echo "make: nvcc: $$(command -v $(NVCC) >/dev/null && $(NVCC) --version | tail -n1 || echo 'not found') (CUDA=1 builds ./pretrain_gpt_cuda)"

$(BUILD)/fp32/%.o: %.c $(CDEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
$(BUILD)/fp64/%.o: %.c $(CDEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -DMT_FP64 -c $< -o $@

$(BUILD)/libmt32.a: $(OBJ32)
	rm -f $@ && ar rcs $@ $^
$(BUILD)/libmt64.a: $(OBJ64)
	rm -f $@ && ar rcs $@ $^

$(BIN)pretrain_gpt: $(BUILD)/fp32/src/main.o $(BUILD)/libmt32.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)
$(BIN)pretrain_gpt_fp64: $(BUILD)/fp64/src/main.o $(BUILD)/libmt64.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/fp32/tests/%: tests/%.c $(BUILD)/libmt32.a $(CDEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) $(LDFLAGS) $< $(BUILD)/libmt32.a -o $@ $(LDLIBS)
$(BUILD)/fp64/tests/%: tests/%.c $(BUILD)/libmt64.a $(CDEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) $(LDFLAGS) -DMT_FP64 $< $(BUILD)/libmt64.a -o $@ $(LDLIBS)

# ---- CUDA=1: ./pretrain_gpt_cuda (fp32) and build/cuda/tests/backend_ops ----
# The C sources again with -DMT_CUDA (the model takes the CUDA backend) plus
# src/cuda/*.cu through nvcc; cuBLAS and the CUDA runtime from CUDA_HOME.
# CUDA_ARCH: real code for sm_75 (the minimum), sm_80 and sm_90, and PTX
# for newer GPUs.
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(shell command -v $(NVCC) 2>/dev/null))
CUDA_ARCH ?= 75 80 90
CUDA_BUILD := build/cuda
NVFLAGS := -O2 -g -std=c++20 -Iinclude -Xcompiler -Wall,-Wno-unused-parameter \
           $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a)) \
           -gencode arch=compute_$(lastword $(CUDA_ARCH)),code=compute_$(lastword $(CUDA_ARCH))
CUSRC := $(wildcard src/cuda/*.cu)
OBJCU := $(patsubst %.c,$(CUDA_BUILD)/%.o,$(LIBSRC)) $(patsubst %.cu,$(CUDA_BUILD)/%.o,$(CUSRC))
CUDA_LDLIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++

cuda: pretrain_gpt_cuda $(CUDA_BUILD)/tests/backend_ops
$(CUDA_BUILD)/%.o: %.c $(CDEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -DMT_CUDA -c $< -o $@
$(CUDA_BUILD)/%.o: %.cu Makefile
	@mkdir -p $(dir $@)
	@[ -n "$(CUDA_HOME)" ] || { echo "make: CUDA=1 needs nvcc (not found on PATH)"; exit 2; }
	$(NVCC) $(NVFLAGS) -MMD -MP -MF $@.d -DMT_CUDA -c $< -o $@
$(CUDA_BUILD)/libmtcuda.a: $(OBJCU)
	rm -f $@ && ar rcs $@ $^
pretrain_gpt_cuda: $(CUDA_BUILD)/src/main.o $(CUDA_BUILD)/libmtcuda.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS) $(CUDA_LDLIBS)
$(CUDA_BUILD)/tests/backend_ops: tests/backend_ops.c $(CUDA_BUILD)/libmtcuda.a $(CDEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -DMT_CUDA $< $(CUDA_BUILD)/libmtcuda.a -o $@ $(LDLIBS) $(CUDA_LDLIBS)

# ---- cudaemu: the CUDA backend with its kernels run on the CPU ------------
# tests/cudaemu/README.md: src/cuda/*.cu through g++ (launches rewritten by
# launch.sed), CUDA's runtime, bf16 type and cuBLAS emulated on the host
# (fibers for the threads, OpenBLAS for the GEMMs). No nvcc, no GPU: CI runs
# the GPU suite's checks on it (tests/suite_backend.sh).
EMU_BUILD := build/cudaemu
EMU_CXXFLAGS := -std=c++20 -O1 -g -Wall -Wno-unused-parameter -Wno-unused-function -Wno-unknown-pragmas -Iinclude -Isrc/cuda -Itests/cudaemu \
                $(filter -I%,$(CFLAGS)) -DMT_CUDA
EMUSRC := $(patsubst src/cuda/%.cu,$(EMU_BUILD)/cu/%.cc,$(CUSRC))
OBJEMU := $(patsubst %.c,$(EMU_BUILD)/%.o,$(LIBSRC)) $(EMUSRC:.cc=.o) $(EMU_BUILD)/cudaemu.o
.PHONY: cudaemu
.SECONDARY: $(EMUSRC) $(EMU_BUILD)/cu/test_cudaemu.cc
cudaemu: $(EMU_BUILD)/pretrain_gpt_cuda $(EMU_BUILD)/tests/backend_ops $(EMU_BUILD)/tests/test_cudaemu
$(EMU_BUILD)/%.o: %.c $(CDEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -DMT_CUDA -c $< -o $@
# A .cu file as g++ reads it: launches rewritten, errors still point at the .cu.
define emu_rewrite
	@mkdir -p $(dir $@)
	{ echo '#line 1 "$<"'; sed -f tests/cudaemu/launch.sed $<; } > $@
endef
$(EMU_BUILD)/cu/%.cc: src/cuda/%.cu tests/cudaemu/launch.sed
	$(emu_rewrite)
$(EMU_BUILD)/cu/%.o: $(EMU_BUILD)/cu/%.cc Makefile
	g++ $(EMU_CXXFLAGS) -MMD -MP -MF $@.d -c $< -o $@
$(EMU_BUILD)/cudaemu.o: tests/cudaemu/cudaemu.cc tests/cudaemu/*.h Makefile
	@mkdir -p $(dir $@)
	g++ $(EMU_CXXFLAGS) -O2 -c $< -o $@
$(EMU_BUILD)/libmtemu.a: $(OBJEMU)
	rm -f $@ && ar rcs $@ $^
$(EMU_BUILD)/pretrain_gpt_cuda: $(EMU_BUILD)/src/main.o $(EMU_BUILD)/libmtemu.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS) -lstdc++
$(EMU_BUILD)/cu/test_cudaemu.cc: tests/cudaemu/test_cudaemu.cu tests/cudaemu/launch.sed
	$(emu_rewrite)
$(EMU_BUILD)/tests/test_cudaemu: $(EMU_BUILD)/cu/test_cudaemu.cc $(EMU_BUILD)/cudaemu.o Makefile
	@mkdir -p $(dir $@)
	g++ $(EMU_CXXFLAGS) -Itests -Wno-pedantic $< $(EMU_BUILD)/cudaemu.o -o $@ $(filter-out -lm,$(LDLIBS)) -lm
$(EMU_BUILD)/tests/backend_ops: tests/backend_ops.c $(EMU_BUILD)/libmtemu.a $(CDEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -DMT_CUDA $< $(EMU_BUILD)/libmtemu.a -o $@ $(LDLIBS) -lstdc++

$(FAULT_SHIM): tests/fault_shim.c Makefile
	@mkdir -p $(dir $@)
	cc -shared -fPIC -O2 -Wall -Wextra $< -o $@ -ldl

$(GEMM_PROFILE): tools/gemm_profile.c Makefile
	cc -shared -fPIC -O2 -Wall -Wextra $(filter -I%,$(CFLAGS)) $< -o $@ -ldl -lpthread

$(BIN)tools/%: tools/%.c $(BUILD)/libmt32.a $(CDEPS)
	@mkdir -p $(dir $@) $(BUILD)/deps
	$(CC) $(CFLAGS) -MMD -MP -MF $(BUILD)/deps/$(notdir $@).d $(LDFLAGS) $< $(BUILD)/libmt32.a -o $@ $(LDLIBS)

run: deps all
	@tools/run-demo.sh

test: deps all
	@$(TEST_ENV) tests/run.sh

# CUDA=1: the GPU report (tools/bench-cuda.sh) instead of the CPU one.
bench: deps all
	@$(if $(filter 1,$(CUDA)),tools/bench-cuda.sh,tools/bench.sh)

# ---- libFuzzer (tests/fuzz, docs/fuzzing.md) ---------------------------------
# clang's libFuzzer with ASan + UBSan (LeakSanitizer on). The library is built
# again with clang and coverage instrumentation (fuzzer-no-link) under
# build/fuzz; OpenMP pragmas are ignored there (the readers have none).
# `make fuzz` runs each harness FUZZ_SECONDS, FUZZ_JOBS at a time, growing
# build/fuzz/corpus_NAME from the seeds in tests/fuzz/corpus_NAME.
FUZZ_SECONDS ?= 600
FUZZ_JOBS ?= 2
FUZZ_DIR := build/fuzz
FUZZ_CC ?= clang
FUZZ_NAMES := config tokens llmc safetensors ckpt_meta generate bpe
FUZZ_BINS := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_NAMES))
FUZZ_OBJ := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(LIBSRC))
# Recursive (=): mpicc is asked only when a fuzz target is built.
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter \
              -Wno-unknown-pragmas -Wno-unknown-warning-option -Iinclude $(filter -I%,$(CFLAGS)) $(shell mpicc --showme:compile) \
              -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_LDLIBS = $(shell mpicc --showme:link) $(LDLIBS)

$(FUZZ_DIR)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -MF $@.d -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_DIR)/libmt_fuzz.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^
$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DIR)/libmt_fuzz.a Makefile
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -MF $@.d -fsanitize=fuzzer $< $(FUZZ_DIR)/libmt_fuzz.a -o $@ $(FUZZ_LDLIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_JOBS)

# The compiler's dependency files (see DEPFLAGS); absent on a first build.
-include $(shell find build -name '*.d' 2>/dev/null)

clean:
	rm -rf build pretrain_gpt pretrain_gpt_fp64 pretrain_gpt_cuda $(TOOL_NAMES) $(GEMM_PROFILE)
