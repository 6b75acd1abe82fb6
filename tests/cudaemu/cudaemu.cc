// cudaemu.cc: the runtime behind cudaemu.h (see there): launches as fibers,
// memory as host memory, cuBLAS on OpenBLAS.
#include "cudaemu.h"
#include "cublas_v2.h"
#include "cuda_bf16.h"

#include <cblas.h>
#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <map>
#include <unordered_map>
#include <vector>

namespace cudaemu {

thread_local thread *cur = nullptr;
void enqueue(std::function<void()> f);  // the stream (below)

// The fibers' switch (x86-64 System V): saves the callee-saved registers
// on the current stack, stores its pointer in *from, and resumes the
// stack at `to`. ucontext's swapcontext does the same plus a sigprocmask
// system call per switch, which made a tiny model's step 2 s.
extern "C" void cudaemu_switch(void **from, void *to);
extern "C" void cudaemu_trampoline(void);
asm(R"(
    .text
    .globl cudaemu_switch
    .type cudaemu_switch, @function
cudaemu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cudaemu_switch, .-cudaemu_switch
    .globl cudaemu_trampoline
    .type cudaemu_trampoline, @function
cudaemu_trampoline:
    movq %rbx, %rdi
    call cudaemu_fiber_main
    ud2
    .size cudaemu_trampoline, .-cudaemu_trampoline
)");

namespace {

[[noreturn]] void die(const char *what) {
    fprintf(stderr, "cudaemu: %s\n", what);
    abort();
}

struct warp_state {
    unsigned alive = 0;  // lanes present and not finished
    int count = 0;       // lanes arrived at the pending exchange or barrier
    unsigned gen = 0, mask = 0;
    unsigned wrote[2] = {0, 0};  // lanes that left a value in slot[g & 1] for generation g
    uint64_t slot[2][32];
};

struct fiber {
    thread t;
    void *sp = nullptr;  // its saved stack pointer while switched out
    bool done = false, waiting = false;
};

}  // namespace

struct block {
    uint3 bid;
    dim3 bdim, gdim;
    int alive = 0, bar_count = 0;
    unsigned bar_gen = 0;
    const void *bar_site = nullptr;  // where the pending barrier's first thread called it
    unsigned long progress = 0;  // barriers released and threads finished
    bool fibers = false;         // false: threads run as plain calls
    bool used_sync = false;
    warp_state warps[32];
    void *sched_sp = nullptr;  // the scheduler's, while a fiber runs
    const std::function<void()> *body = nullptr;
    unsigned long serial = 0;  // this block run's number, for shared_fresh
};

namespace {

thread_local block *cur_block = nullptr;
thread_local std::vector<fiber> pool;
thread_local std::vector<char *> stacks;
thread_local unsigned long block_runs = 0;  // numbers each block run
// The block run that last filled each __shared__ array (by address).
thread_local std::unordered_map<const void *, unsigned long> shared_filled;
const size_t STACK = 64 * 1024;

void yield_wait() {
    fiber *f = (fiber *)((char *)cur - offsetof(fiber, t));
    f->waiting = true;
    cudaemu_switch(&f->sp, cur_block->sched_sp);
    f->waiting = false;
}

void sync_point() {
    block *b = cur_block;
    b->used_sync = true;
    if (!b->fibers) die("a kernel whose first launch met no barrier or shuffle met one now (divergent use)");
}

void try_release_warp(warp_state &w) {
    unsigned need = (unsigned)__builtin_popcount(w.mask & w.alive);
    if (w.count > 0 && (unsigned)w.count >= need) {
        w.count = 0;
        w.gen++;
        cur_block->progress++;
    }
}

void try_release_block(block *b) {
    if (b->bar_count > 0 && b->bar_count >= b->alive) {
        b->bar_count = 0;
        b->bar_gen++;
        b->progress++;
    }
}


std::unordered_map<const void *, bool> sync_free;  // kernels seen to need no fibers
// Threads run in thread order on even launches and in reverse on odd ones:
// a barrier left out between a write and a read by another thread shows on
// one of the two, whichever thread writes. Blocks too: two blocks that write
// one element, or one that reads what another writes in the same launch (a
// race on a GPU, whose blocks run in any order and at once), give results
// that change with the launch's parity. CUDAEMU_ORDER_FLIP=1 swaps the
// parity, so a second run sees every launch in the other order.
unsigned long launches = 0;
bool reversed() {
    static const bool flip = [] { const char *e = getenv("CUDAEMU_ORDER_FLIP"); return e && *e == '1'; }();
    return (bool)(launches & 1) != flip;
}
thread_local cudaError_t last_error = cudaSuccess;

// Thread i of block b (linear index, x fastest, as CUDA numbers them).
void place(thread &t, int i, block &b) {
    t.tid = {(unsigned)i % b.bdim.x, (unsigned)i / b.bdim.x % b.bdim.y, (unsigned)i / (b.bdim.x * b.bdim.y)};
    t.warp = i / 32, t.lane = i % 32, t.blk = &b;
}

void run_block(block &b, int nthreads) {
    b.serial = ++block_runs;
    b.alive = nthreads;
    b.bar_count = 0;
    for (int w = 0; w < 32; w++) b.warps[w] = warp_state();
    for (int i = 0; i < nthreads; i++) b.warps[i / 32].alive |= 1u << (i % 32);
    bool rev = reversed();
    if (!b.fibers) {
        thread t;
        for (int k = 0; k < nthreads; k++) {
            place(t, rev ? nthreads - 1 - k : k, b);
            cur = &t;
            (*b.body)();
        }
        cur = nullptr;
        return;
    }
    if ((int)pool.size() < nthreads) pool.resize(nthreads);
    while ((int)stacks.size() < nthreads) {
        // A PROT_NONE page below each stack: an overflow faults instead of
        // writing into the next fiber's stack.
        size_t pg = (size_t)sysconf(_SC_PAGESIZE);
        char *m = (char *)mmap(nullptr, STACK + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || mprotect(m, pg, PROT_NONE)) die("cannot map a fiber stack");
        stacks.push_back(m + pg);
    }
    for (int i = 0; i < nthreads; i++) {
        fiber &f = pool[i];
        f.done = f.waiting = false;
        place(f.t, i, b);
        // A new stack as cudaemu_switch leaves one: six registers (rbx
        // holding the fiber), then the trampoline as the return address,
        // the stack 16-byte aligned once it has returned there.
        void **top = (void **)(stacks[i] + STACK - 16);
        top[-1] = (void *)cudaemu_trampoline;
        top[-3] = &f;  // rbx
        f.sp = top - 7;
    }
    while (b.alive > 0) {
        unsigned long before = b.progress;
        bool all_waiting = true;
        for (int k = 0; k < nthreads; k++) {
            fiber &f = pool[rev ? nthreads - 1 - k : k];
            if (f.done) continue;
            cur = &f.t;
            cudaemu_switch(&b.sched_sp, f.sp);
            if (!f.done && !f.waiting) all_waiting = false;
        }
        if (b.alive > 0 && b.progress == before && all_waiting)
            die("deadlock: the block's threads wait at different barriers or shuffles (a __syncthreads or "
                "__shfl_sync not reached by every thread it waits for)");
    }
    cur = nullptr;
}

}  // namespace

// A fiber's whole life: the kernel body, then the bookkeeping of a finished
// thread, then back to the scheduler for good (cudaemu_trampoline calls it).
extern "C" [[noreturn]] void cudaemu_fiber_main(void *arg) {
    fiber *f = (fiber *)arg;
    block *b = cur_block;
    (*b->body)();
    f->done = true;
    b->alive--;
    b->warps[f->t.warp].alive &= ~(1u << f->t.lane);
    b->progress++;
    try_release_block(b);
    try_release_warp(b->warps[f->t.warp]);
    cudaemu_switch(&f->sp, b->sched_sp);
    __builtin_unreachable();
}

void shared_fresh(void *p, size_t bytes) {
    unsigned long &last = shared_filled[p];
    if (last == cur_block->serial) return;  // another thread of this block got here first
    last = cur_block->serial;
    memset(p, 0xa5, bytes);
}

const uint3 &block_idx() { return cur_block->bid; }
const dim3 &block_dim() { return cur_block->bdim; }
const dim3 &grid_dim() { return cur_block->gdim; }

// CUDA allows __syncthreads in conditional code only where the condition
// is the same for the whole block; one barrier met at two call sites is
// such a divergence (on a GPU: a hang, or threads let through early).
__attribute__((noinline)) void syncthreads() {
    sync_point();
    block *b = cur_block;
    const void *site = __builtin_return_address(0);
    if (b->bar_count == 0) b->bar_site = site;
    else if (b->bar_site != site)
        die("divergent __syncthreads: threads of one block wait at different barriers (a barrier in code "
            "not every thread of the block runs)");
    unsigned gen = b->bar_gen;
    b->bar_count++;
    try_release_block(b);
    while (b->bar_gen == gen) yield_wait();
}

static warp_state &arrive(unsigned mask, unsigned *gen) {
    sync_point();
    warp_state &w = cur_block->warps[cur->warp];
    if (!(mask >> cur->lane & 1u)) die("a lane called a warp primitive with a mask that leaves it out");
    if (w.count > 0 && w.mask != mask) die("lanes of one warp passed different masks to one warp primitive");
    w.mask = mask;
    *gen = w.gen;
    return w;
}

void syncwarp(unsigned mask) {
    unsigned gen;
    warp_state &w = arrive(mask, &gen);
    w.count++;
    try_release_warp(w);
    while (w.gen == gen) yield_wait();
}

uint64_t exchange(unsigned mask, uint64_t v, int src) {
    unsigned gen;
    warp_state &w = arrive(mask, &gen);
    if (w.count == 0) w.wrote[gen & 1] = 0;
    w.slot[gen & 1][cur->lane] = v;
    w.wrote[gen & 1] |= 1u << cur->lane;
    w.count++;
    try_release_warp(w);
    while (w.gen == gen) yield_wait();
    // This lane's own mask (all lanes passed the same one): w.mask may
    // already be the next primitive's, set by a lane that ran ahead.
    if (!(mask >> src & 1u)) return v;  // undefined on a GPU; our own value here
    if (!(w.wrote[gen & 1] >> src & 1u))
        die("a shuffle read a lane its mask names that had exited without reaching it (undefined on a GPU)");
    return w.slot[gen & 1][src];
}

void launch(const void *key, dim3 g, dim3 b, size_t shmem, const std::function<void()> &body) {
    size_t nthreads = (size_t)b.x * b.y * b.z;
    // The hardware's limits (compute capability 7.5 to 9.0).
    if (!nthreads || nthreads > 1024 || b.z > 64 || !g.x || !g.y || !g.z || g.y > 65535 || g.z > 65535) {
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    if (shmem > 48 * 1024) {  // past 48 KiB needs cudaFuncSetAttribute, which src/cuda never calls
        last_error = cudaErrorInvalidValue;
        return;
    }
    // Runs when the host next waits, in order with the rest of the queue.
    enqueue([key, g, b, nthreads, body]() {
        launches++;
        block blk;
        blk.bdim = b, blk.gdim = g, blk.body = &body;
        auto known = sync_free.find(key);
        blk.fibers = known == sync_free.end() || !known->second;
        block *saved = cur_block;
        cur_block = &blk;
        size_t nblocks = (size_t)g.x * g.y * g.z;
        bool rev = reversed();
        for (size_t k = 0; k < nblocks; k++) {
            size_t i = rev ? nblocks - 1 - k : k;
            blk.bid = {(unsigned)(i % g.x), (unsigned)(i / g.x % g.y), (unsigned)(i / ((size_t)g.x * g.y))};
            run_block(blk, (int)nthreads);
        }
        cur_block = saved;
        if (known == sync_free.end()) sync_free[key] = !blk.used_sync;
    });
}

}  // namespace cudaemu

// ---- runtime API ------------------------------------------------------------
using cudaemu::last_error;

static size_t device_bytes() {
    const char *e = getenv("CUDAEMU_MEMORY_MIB");
    return (size_t)(e ? atol(e) : 16384) << 20;
}

// ---- the stream and device memory --------------------------------------------
// A GPU runs launches, asynchronous copies and cuBLAS calls after they have
// returned, in order, and the host may look at what they wrote only after a
// call that waits for them. Here that work waits in a queue until such a
// call (cudaDeviceSynchronize, cudaStreamSynchronize, cudaMemcpy, cudaFree):
// a host read that skips the wait sees the old contents every time (on a GPU
// it races), so the results it feeds go wrong and the tests comparing them
// fail.
// CUDAEMU_STRICT=1 also closes device memory, one arena, to the host
// (mprotect) while work waits, as a GPU without concurrent managed access
// does (concurrentManagedAccess 0: Windows, some embedded parts): any host
// touch then stops the process with a line and a backtrace. H100/H200 on
// Linux allow such reads of buffers the queued work does not touch, so
// strict mode is a portability check, off by default (suite_backend runs
// five layouts with it).
// (One process-wide queue and arena, as CUDA's legacy default stream and
// device memory are one per process.)
// Guard pages (default; CUDAEMU_GUARD=0 turns them off, and strict mode,
// which opens and closes the arena as a whole, does without them): each
// allocation ends exactly where a PROT_NONE page begins, so a kernel or a
// copy that reads or writes one byte past a buffer's end stops the process
// with a line, as compute-sanitizer's memcheck would report it on a GPU
// (where such a read usually returns a neighbour's data silently). The
// pointer is then aligned as the size allows (the largest power of two
// dividing it; a multiple of 256 bytes is at least cudaMalloc's 256-byte
// aligned): a float buffer of odd length is 4-byte aligned. Every buffer
// here holds one type, and no kernel assumes more (no vector loads).
namespace {
struct allocation {
    char *base;          // the slot: [base, base + slot), its guard page at the end
    size_t slot, bytes;  // slot size, asked size
};
struct device_state {
    std::vector<std::function<void()>> queue;
    char *arena = nullptr;
    size_t cap = 0, used = 0, in_use = 0;
    bool closed = false, strict = false, guard = false, draining = false;
    std::unordered_map<void *, allocation> sizes;  // live, by pointer
    std::multimap<size_t, char *> spare;           // freed slots, by slot size
};
device_state dev;

size_t page_up(size_t n) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (n + pg - 1) / pg * pg;
}
void set_access(bool open) {
    if (!dev.strict) return;
    if (dev.used && mprotect(dev.arena, page_up(dev.used), open ? PROT_READ | PROT_WRITE : PROT_NONE))
        cudaemu::die("mprotect failed on the device arena");
    dev.closed = !open;
}
void on_segv(int sig, siginfo_t *si, void *) {
    char *a = (char *)si->si_addr;
    if (dev.arena && a >= dev.arena && a < dev.arena + dev.cap) {
        char msg[256] = "cudaemu: the host touched device memory while GPU work was still queued "
                        "(a missing sync before host access); where:\n";
        if (dev.guard) {
            // Which allocation's guard page: the live one whose end is there.
            const allocation *hit = nullptr;
            const void *p = nullptr;
            for (auto &kv : dev.sizes)
                if (a >= (char *)kv.first + kv.second.bytes && a < kv.second.base + kv.second.slot) hit = &kv.second, p = kv.first;
            if (hit)
                snprintf(msg, sizeof msg, "cudaemu: an access at byte %zu of a %zu-byte device allocation at %p "
                         "(out of bounds: a kernel or a copy); where:\n", (size_t)(a - (char *)p), hit->bytes, p);
            else
                snprintf(msg, sizeof msg, "cudaemu: an access to device memory outside every live allocation (at %p); where:\n", (void *)a);
        }
        if (write(2, msg, strlen(msg)) < 0) _exit(134);
        void *bt[32];
        backtrace_symbols_fd(bt, backtrace(bt, 32), 2);
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    signal(sig, SIG_DFL);  // not ours: the default crash, on return
}
void arena_init() {
    if (dev.arena) return;
    dev.cap = device_bytes() + ((size_t)1 << 30);
    // Reserved, committed page by page as touched.
    void *p = mmap(nullptr, dev.cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) cudaemu::die("cannot reserve the device arena");
    dev.arena = (char *)p;
    const char *st = getenv("CUDAEMU_STRICT");
    dev.strict = st && !strcmp(st, "1");
    if (dev.strict) fprintf(stderr, "cudaemu: strict: device memory closed to the host while work is queued\n");
    const char *gd = getenv("CUDAEMU_GUARD");
    dev.guard = !dev.strict && !(gd && !strcmp(gd, "0"));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, nullptr);
}
}  // namespace

namespace cudaemu {
// Queues f (opening nothing to the host until the next wait).
void enqueue(std::function<void()> f) {
    dev.queue.push_back(std::move(f));
    if (!dev.closed && !dev.draining) set_access(false);
}
// The host waits: everything queued runs, and device memory opens again.
void drain() {
    if (dev.draining) return;  // work that waits runs the rest of the queue in order anyway
    set_access(true);
    dev.draining = true;
    while (!dev.queue.empty()) {
        std::vector<std::function<void()>> q;
        q.swap(dev.queue);
        for (auto &f : q) f();
    }
    dev.draining = false;
}
}  // namespace cudaemu
using cudaemu::drain;
using cudaemu::enqueue;

static cudaError_t alloc(void **p, size_t bytes) {
    if (!p) return last_error = cudaErrorInvalidValue;
    if (dev.in_use + bytes > device_bytes()) return last_error = cudaErrorMemoryAllocation;
    arena_init();
    // Without guards: cudaMalloc's 256-byte alignment (zero bytes still get
    // a distinct pointer). With them: the data pages and one guard page.
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), span = page_up(bytes ? bytes : 1);
    size_t n = dev.guard ? span + pg : bytes ? (bytes + 255) / 256 * 256 : 256;
    char *base;
    auto it = dev.spare.find(n);
    if (it != dev.spare.end()) {
        base = it->second;
        dev.spare.erase(it);
    } else {
        if (dev.used + n > dev.cap) return last_error = cudaErrorMemoryAllocation;
        base = dev.arena + dev.used;
        dev.used += n;
        if (dev.guard && mprotect(base + span, pg, PROT_NONE)) cudaemu::die("mprotect failed on a guard page");
    }
    *p = dev.guard ? base + span - bytes : base;
    // Fresh device memory holds garbage, not zeros: code that reads before
    // it writes shows here. (Filled now, through a moment's opening; closing
    // again covers the new pages too.)
    bool closed = dev.closed;
    if (closed) set_access(true);
    memset(*p, 0xa5, bytes);
    if (closed) set_access(false);
    dev.sizes[*p] = {base, n, bytes};
    dev.in_use += bytes;
    return cudaSuccess;
}

static cudaError_t release(void *p) {
    auto it = dev.sizes.find(p);
    if (it == dev.sizes.end()) return last_error = cudaErrorInvalidValue;
    // Freed memory becomes garbage again: a kernel still reading it (a
    // use after a stream-ordered free) reads 0xa5, not the old values.
    memset(p, 0xa5, it->second.bytes);
    dev.in_use -= it->second.bytes;
    dev.spare.emplace(it->second.slot, it->second.base);
    dev.sizes.erase(it);
    return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *n) {
    const char *none = getenv("CUDAEMU_NO_DEVICE");
    if (none && !strcmp(none, "1")) { *n = 0; return last_error = cudaErrorNoDevice; }
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : (last_error = cudaErrorInvalidValue); }
cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "cudaemu (kernels on the CPU, tests/cudaemu)");
    p->totalGlobalMem = device_bytes();
    p->sharedMemPerBlock = 48 * 1024;
    p->major = 9, p->minor = 0, p->multiProcessorCount = 1, p->maxThreadsPerBlock = 1024, p->warpSize = 32;
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b) {
    *total_b = device_bytes();
    *free_b = *total_b - dev.in_use;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t bytes) { return alloc(p, bytes); }
cudaError_t cudaMallocManaged(void **p, size_t bytes, unsigned) { return alloc(p, bytes); }
cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t) { return alloc(p, bytes); }
cudaError_t cudaFree(void *p) {  // waits for the device, as CUDA's does
    if (!p) return cudaSuccess;
    drain();
    return release(p);
}
cudaError_t cudaFreeAsync(void *p, cudaStream_t) {
    if (!p) return cudaSuccess;
    if (!dev.sizes.count(p)) return last_error = cudaErrorInvalidValue;
    enqueue([p]() { release(p); });
    return cudaSuccess;
}
// Blocking copies wait for the queue first (host and device see each other's writes).
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind) {
    drain();
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
    if (bytes) enqueue([=]() { memmove(dst, src, bytes); });
    return cudaSuccess;
}
// cudaMemset on device memory returns before it has run, as the async one does.
cudaError_t cudaMemset(void *p, int v, size_t bytes) {
    if (bytes) enqueue([=]() { memset(p, v, bytes); });
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t) { return cudaMemset(p, v, bytes); }
cudaError_t cudaDeviceSynchronize(void) {
    drain();
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
    drain();
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return last_error; }
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    default: return "unknown error";
    }
}

// ---- cuBLAS on OpenBLAS (column-major, as cuBLAS) -----------------------------
struct cudaemu_blas { cublasMath_t math; };
cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = new cudaemu_blas{CUBLAS_DEFAULT_MATH};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = m;
    return CUBLAS_STATUS_SUCCESS;
}
static CBLAS_TRANSPOSE op(cublasOperation_t t) { return t == CUBLAS_OP_T ? CblasTrans : CblasNoTrans; }
// cuBLAS's argument checks (its documented CUBLAS_STATUS_INVALID_VALUE cases).
static bool bad_dims(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda, int ldb, int ldc) {
    return m < 0 || n < 0 || k < 0 || lda < (ta == CUBLAS_OP_N ? (m > 1 ? m : 1) : (k > 1 ? k : 1)) ||
           ldb < (tb == CUBLAS_OP_N ? (k > 1 ? k : 1) : (n > 1 ? n : 1)) || ldc < (m > 1 ? m : 1);
}
static void sgemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (!m || !n) return;
    if (!k) {  // BLAS needs k >= 1; C = beta C
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) C[(size_t)j * ldc + i] = beta == 0 ? 0 : beta * C[(size_t)j * ldc + i];
        return;
    }
    cblas_sgemm(CblasColMajor, op(ta), op(tb), m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bad_dims(ta, tb, m, n, k, lda, ldb, ldc)) return CUBLAS_STATUS_INVALID_VALUE;
    float al = *alpha, be = *beta;  // host scalars, read at the call (CUBLAS_POINTER_MODE_HOST)
    enqueue([=]() { sgemm(ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc); });
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const float *alpha, const float *A, int lda, long long sa,
                                         const float *B, int ldb, long long sb, const float *beta, float *C, int ldc,
                                         long long sc, int batch) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bad_dims(ta, tb, m, n, k, lda, ldb, ldc) || batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
    float al = *alpha, be = *beta;
    enqueue([=]() {
        for (int i = 0; i < batch; i++) sgemm(ta, tb, m, n, k, al, A + i * sa, lda, B + i * sb, ldb, be, C + i * sc, ldc);
    });
    return CUBLAS_STATUS_SUCCESS;
}
// bf16 operands: exact as fp32, then an fp32 product (cuBLAS accumulates in
// fp32 on the tensor cores under CUBLAS_COMPUTE_32F).
static float *widen(const void *x, cudaDataType t, int ld, int cols) {
    size_t n = (size_t)ld * cols;
    float *w = (float *)malloc(n * sizeof(float) + 1);
    const __nv_bfloat16 *b = (const __nv_bfloat16 *)x;
    for (size_t i = 0; i < n; i++) w[i] = t == CUDA_R_16BF ? __bfloat162float(b[i]) : ((const float *)x)[i];
    return w;
}
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType at, int lda, const void *B,
                            cudaDataType bt, int ldb, const void *beta, void *C, cudaDataType ct, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (ct != CUDA_R_32F || compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (bad_dims(ta, tb, m, n, k, lda, ldb, ldc)) return CUBLAS_STATUS_INVALID_VALUE;
    float al = *(const float *)alpha, be = *(const float *)beta;
    enqueue([=]() {
        float *a = widen(A, at, lda, ta == CUBLAS_OP_N ? k : m), *b = widen(B, bt, ldb, tb == CUBLAS_OP_N ? n : k);
        sgemm(ta, tb, m, n, k, al, a, lda, b, ldb, be, (float *)C, ldc);
        free(a);
        free(b);
    });
    return CUBLAS_STATUS_SUCCESS;
}
