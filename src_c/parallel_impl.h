/* Threads of a call: how many, and how they share the work. Included once, by cdropout.c.
 *
 * The split. The calling thread starts at once and claims chunks of the array from an atomic
 * counter, guided (each claim takes 1 / (2 * team size) of what is left, at least CD_MIN_CHUNK
 * elements, in whole CD_TILE tiles, so no two threads share a byte of a packed mask and the masks
 * do not depend on who took which chunk). Helpers claim chunks as they wake; one that wakes late
 * finds little or nothing left. The OpenMP region still ends with a join, so the caller waits for
 * every helper to have started: that is the cost the policy below watches.
 *
 * The policy (default thread count only; an explicit num_threads is always obeyed). In a training
 * loop a dropout call follows a matmul: the helpers of the pool have stopped spinning and sleep,
 * and the other core is busy (BLAS threads spinning, another process). Waking a helper then costs
 * from about 50 us (idle core) to a scheduler time slice, several ms, which the join makes the
 * caller wait. So each calling thread keeps a balance of what its default team calls saved. The
 * caller's CPU time per element it did (not inflated when it is preempted, even by its own helper
 * woken onto the same core; read on every call from 1 Mi elements, on one in 8 below, as a read
 * costs about 0.5 us) times the whole array estimates the one-thread time T1; a team call of time
 * T adds T1 - CD_WIN * T (a gain below CD_WIN counts against the team), and the balance decays by
 * CD_DECAY at every call. While the balance is negative, calls run on the calling thread alone,
 * and one in `backoff` (32 after a first loss, doubling to 1024) tries the team again. Balances
 * are kept apart for calls that come less than CD_WARM_GAP after the last team call (the helpers
 * still spin: back-to-back calls) and the others (they sleep: a call after other work), and for
 * calls shorter and longer than CD_BIG_SECONDS on one thread. The first team call of a thread,
 * which pays for creating the threads, is not counted. The state is per calling thread
 * (_Thread_local), as libgomp keeps one pool per thread that starts parallel regions; nothing in
 * the user's OpenMP settings is changed. */
#ifndef CDROPOUT_PARALLEL_IMPL_H
#define CDROPOUT_PARALLEL_IMPL_H

#ifdef _OPENMP
#include <omp.h>
#if !defined(__STDC_NO_ATOMICS__)
#include <stdatomic.h>
#define CD_GUIDED 1
#endif
#endif

#if defined(_OPENMP) && defined(__unix__)
/* GNU libgomp keeps its thread pool across fork() but the child has none of its threads: a
 * parallel region in a child of a process that had started a team waits forever. So a process
 * remembers whether it started a team, and a fork child of such a process runs every call on
 * the calling thread (same results: the mask does not depend on the thread count). */
#include <pthread.h>
#include <signal.h>
#define CD_FORK_GUARD 1
static volatile sig_atomic_t team_started = 0;
static volatile sig_atomic_t pool_lost = 0;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void on_fork_child(void)
{
    if (team_started)
        pool_lost = 1;
}
static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}
#endif

#define CD_MIN_CHUNK (8 * CD_TILE)      /* smallest claim: 8 Ki elements, a few us of work (or
                                           the per-thread minimum, when tests lower it) */
#define CD_WARM_GAP 1e-3                /* s; libgomp's helpers spin about 3-7 ms after a region here */
#define CD_WIN 1.2                      /* a team call should be this much faster than one thread */
#define CD_DECAY 0.98                   /* per call: a loss is forgotten after some hundred calls */
#define CD_BIG_SECONDS 2e-3            /* calls this long on one thread learn apart from short ones */
#define CD_MEASURE_ALWAYS (1 << 20)     /* elements: from here the CPU clock (~0.5 us a read) is cheap */
#define CD_MEASURE_EVERY 8              /* smaller calls: measure one in 8 (the rate carries over) */
#define CD_BACKOFF_FIRST 32
#define CD_BACKOFF_MAX 1024

/* The most threads a call is given, whatever it asks: 4 per processor, at least 64. Results do
 * not depend on the count, and libgomp exits the process when it cannot create a thread. The
 * Python layer reads it (cd_thread_limit) instead of keeping a rule of its own. */
int cd_thread_limit(void)
{
#ifdef _OPENMP
    int p = omp_get_num_procs();
    return p > 16 ? 4 * p : 64;
#else
    return 64; /* without OpenMP a call runs on the calling thread whatever the count */
#endif
}

int cd_default_threads(void)
{
#ifdef _OPENMP
    int m = omp_get_max_threads(), lim = cd_thread_limit();
    return m < lim ? m : lim;
#else
    return 1;
#endif
}

/* Kinds of call: warm (CD_COLD bit clear: within CD_WARM_GAP of the last team call) or cold, and
 * short or long (CD_BIG bit: at least CD_BIG_SECONDS of work on one thread). */
enum { CD_COLD = 1, CD_BIG = 2, CD_KINDS = 4 };
typedef struct {
    double last_end;          /* omp_get_wtime() at the end of this thread's last team call; < 0: none */
    double rate;              /* CPU s per element of the caller in its last measured team call; 0: unknown */
    double balance[CD_KINDS]; /* time the team saved (< 0: lost), decayed, per kind of call */
    int skip[CD_KINDS];       /* calls of each kind to run alone before trying the team again */
    int backoff[CD_KINDS];    /* the last skip length of each kind; 0: the team pays */
    unsigned calls;           /* default team calls made, to measure one in CD_MEASURE_EVERY */
    int last_threads;         /* threads the last call of this thread ran on */
} thread_policy;

static _Thread_local thread_policy policy = {-1.0, 0.0, {0.0}, {0}, {0}, 0u, 1};

int cd_last_threads(void)
{
    return policy.last_threads;
}

typedef void (*chunk_fn)(const void *ctx, int64_t i0, int64_t i1);

#if defined(CD_FORK_GUARD)
#include <time.h>
#endif
#if defined(CD_GUIDED) && defined(CD_FORK_GUARD) && defined(CLOCK_THREAD_CPUTIME_ID)
/* CPU time of the calling thread: its rate is not inflated when it is preempted (by its own
 * helper, woken onto the same core, or by another process). */
static double cpu_now(void)
{
    struct timespec t;
    return clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) == 0 ? (double)t.tv_sec + 1e-9 * (double)t.tv_nsec
                                                            : omp_get_wtime();
}
#elif defined(CD_GUIDED)
static double cpu_now(void)
{
    return omp_get_wtime();
}
#endif

#ifdef CD_GUIDED
/* Claim the next chunk of [0, n) for a team of T: *i0 gets its start, the return its length. */
static int64_t claim(_Atomic int64_t *next, int64_t n, int64_t T, int64_t least, int64_t *i0)
{
    int64_t at = atomic_load_explicit(next, memory_order_relaxed), len;
    do {
        int64_t rem = n - at;
        if (rem <= 0)
            return 0;
        len = (rem / (2 * T) + CD_TILE - 1) / CD_TILE * CD_TILE;
        if (len < least)
            len = least;
        if (len > rem)
            len = rem;
    } while (!atomic_compare_exchange_weak_explicit(next, &at, at + len, memory_order_relaxed,
                                                    memory_order_relaxed));
    *i0 = at;
    return len;
}
#endif

/* Split [0, n) over at most nthreads threads (0: the default, see above), each with at least
 * ex->min_per_thread elements, and call fn on chunks that start at multiples of CD_TILE. An array
 * too small for two threads runs on the calling thread without waking the OpenMP pool. */
static void parallel_for(int64_t n, const cd_exec *ex, chunk_fn fn, const void *ctx)
{
    const int64_t min = ex->min_per_thread > CD_TILE ? ex->min_per_thread : CD_TILE;
    const int automatic = ex->nthreads <= 0;
    int64_t nt = 1;
    if (n / min >= 2) { /* else no OpenMP query at all: omp_get_num_procs() is a system call */
        nt = automatic ? cd_default_threads() : ex->nthreads;
        int lim = cd_thread_limit();
        if (nt > lim)
            nt = lim;
        if (nt > n / min)
            nt = n / min;
#ifndef _OPENMP
        nt = 1; /* no team without OpenMP */
#endif
    }
#ifdef CD_FORK_GUARD
    pthread_once(&atfork_once, register_atfork);
    if (pool_lost)
        nt = 1;
#endif
#ifdef CD_GUIDED
    double t0 = 0.0, c0 = 0.0;
    int kind = 0, measure = 0;
    if (nt > 1 && automatic) {
        t0 = omp_get_wtime();
        kind = (policy.last_end >= 0.0 && t0 - policy.last_end < CD_WARM_GAP ? 0 : CD_COLD) |
               (policy.rate * (double)n >= CD_BIG_SECONDS ? CD_BIG : 0);
        policy.balance[kind] *= CD_DECAY;
        if (policy.skip[kind] > 0) {
            policy.skip[kind]--;
            nt = 1;
        }
    }
#endif
    policy.last_threads = 1;
    if (nt <= 1) {
        if (n > 0)
            fn(ctx, 0, n);
        return;
    }
#ifdef CD_FORK_GUARD
    team_started = 1;
#endif
#ifdef CD_GUIDED
    _Atomic int64_t next;
    atomic_init(&next, 0);
    const int64_t least = (min < CD_MIN_CHUNK ? min : CD_MIN_CHUNK) / CD_TILE * CD_TILE; /* >= 1 tile */
    double c_caller = 0.0;
    int64_t by_caller = 0;
    int team = 1;
    if (automatic) {
        measure = policy.rate == 0.0 || n >= CD_MEASURE_ALWAYS || ++policy.calls % CD_MEASURE_EVERY == 0;
        if (measure)
            c0 = cpu_now();
    }
#pragma omp parallel num_threads((int)nt)
    {
        const int64_t T = omp_get_num_threads();
        int64_t i0, len, mine = 0;
        while ((len = claim(&next, n, T, least, &i0)) > 0) {
            fn(ctx, i0, i0 + len);
            mine += len;
        }
        if (omp_get_thread_num() == 0) {
            if (measure)
                c_caller = cpu_now();
            by_caller = mine;
            team = (int)T;
        }
    }
    const double t1 = omp_get_wtime();
    const int first = policy.last_end < 0.0; /* this thread's first team: libgomp made its threads */
    policy.last_end = t1;
    policy.last_threads = team;
    if (measure && by_caller > 0 && c_caller > c0)
        policy.rate = (c_caller - c0) / (double)by_caller;
    if (automatic && policy.rate > 0.0 && !first) {
        const double one = policy.rate * (double)n; /* the call on one thread, estimated */
        policy.balance[kind] += one - CD_WIN * (t1 - t0);
        if (policy.balance[kind] < 0.0) {
            int b = policy.backoff[kind];
            b = b == 0 ? CD_BACKOFF_FIRST : b < CD_BACKOFF_MAX ? 2 * b : CD_BACKOFF_MAX;
            policy.backoff[kind] = b;
            policy.skip[kind] = b;
        } else {
            policy.backoff[kind] = 0;
            policy.skip[kind] = 0;
        }
    }
#else
    const int64_t tiles = (n + CD_TILE - 1) / CD_TILE;
#ifdef _OPENMP
#pragma omp parallel num_threads((int)nt)
    {
        int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
#else
    for (int64_t t = 0, T = nt; t < T; t++) {
#endif
        int64_t i0 = tiles * t / T * CD_TILE, i1 = tiles * (t + 1) / T * CD_TILE;
        if (i1 > n)
            i1 = n;
        if (i0 < i1)
            fn(ctx, i0, i1);
    }
#ifdef _OPENMP
    policy.last_threads = (int)nt;
#endif
#endif
}

#endif
