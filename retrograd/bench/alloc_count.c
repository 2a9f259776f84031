/* The benchmark's allocation counter, preloaded (LD_PRELOAD) into its memory children.

   Every malloc-family call goes to glibc's own allocator (__libc_*), and the counter adds the
   block's usable size on allocation and takes it off on free: `alloc_count_current` is the
   bytes the process's allocator has handed out and not had back, `alloc_count_peak` its
   largest value since `alloc_count_reset_peak`. NumPy's buffers, PyTorch's (posix_memalign)
   and, with PYTHONMALLOC=malloc, Python's objects all come through here, so the two libraries
   are counted alike, to the byte. Atomic: BLAS and PyTorch threads allocate
   too. Built by retrograd/bench/alloc_count.py with the system's C compiler. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static long long current, peak;

static void count_in(void *p) {
    if (!p) return;
    long long now = __atomic_add_fetch(&current, (long long)malloc_usable_size(p), __ATOMIC_RELAXED);
    long long seen = __atomic_load_n(&peak, __ATOMIC_RELAXED);
    while (now > seen &&
           !__atomic_compare_exchange_n(&peak, &seen, now, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static void count_out(void *p) {
    if (p) __atomic_sub_fetch(&current, (long long)malloc_usable_size(p), __ATOMIC_RELAXED);
}

void *malloc(size_t n) {
    void *p = __libc_malloc(n);
    count_in(p);
    return p;
}

void *calloc(size_t count, size_t size) {
    void *p = __libc_calloc(count, size);
    count_in(p);
    return p;
}

void free(void *p) {
    count_out(p);
    __libc_free(p);
}

void *realloc(void *p, size_t n) {
    long long old = p ? (long long)malloc_usable_size(p) : 0;
    void *q = __libc_realloc(p, n);
    if (q || n == 0) { /* the old block is gone (moved, grown in place or freed) */
        __atomic_sub_fetch(&current, old, __ATOMIC_RELAXED);
        count_in(q);
    }
    return q;
}

void *reallocarray(void *p, size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, count * size);
}

void *memalign(size_t align, size_t n) {
    void *p = __libc_memalign(align, n);
    count_in(p);
    return p;
}

void *aligned_alloc(size_t align, size_t n) { return memalign(align, n); }

void *valloc(size_t n) { return memalign((size_t)sysconf(_SC_PAGESIZE), n); }

void *pvalloc(size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return memalign(page, (n + page - 1) & ~(page - 1));
}

int posix_memalign(void **out, size_t align, size_t n) {
    if (align < sizeof(void *) || (align & (align - 1))) return EINVAL;
    void *p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    count_in(p);
    *out = p;
    return 0;
}

long long alloc_count_current(void) { return __atomic_load_n(&current, __ATOMIC_RELAXED); }

long long alloc_count_peak(void) { return __atomic_load_n(&peak, __ATOMIC_RELAXED); }

void alloc_count_reset_peak(void) {
    __atomic_store_n(&peak, __atomic_load_n(&current, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
}
