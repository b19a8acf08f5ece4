/* The rest of the Linux calls a static program makes: process identity, time, signals (no
 * handler ever runs: a signal that would kill ends the program with 128 + N), limits,
 * thread-pointer setup, randomness, and single-threaded futexes. Plus the user-memory
 * helpers every call uses. */
#include "linux.h"

#define MSR_FS_BASE 0xc0000100
#define MSR_GS_BASE 0xc0000101

static inline void wrmsr64(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static inline uint64_t rdmsr64(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

int lx_user_range(uint64_t addr, uint64_t n)
{
    return addr >= PVM_AS_LOW_BASE && addr < PVM_AS_USER_END && n <= PVM_AS_USER_END - addr;
}

long lx_copy_in(void *dst, uint64_t user, unsigned long n)
{
    if (!lx_user_range(user, n))
        return -LX_EFAULT;
    return n ? copy_user(dst, (const void *)user, n) : 0;
}

long lx_copy_out(uint64_t user, const void *src, unsigned long n)
{
    if (!lx_user_range(user, n))
        return -LX_EFAULT;
    return n ? copy_user((void *)user, src, n) : 0;
}

long lx_string_in(char *dst, uint64_t user, unsigned long max)
{
    unsigned long got = 0;
    while (got < max) {
        /* Never read past the page the string is in unless it goes on there. */
        unsigned long chunk = 4096 - ((user + got) & 4095);
        if (chunk > max - got)
            chunk = max - got;
        long r = lx_copy_in(dst + got, user + got, chunk);
        if (r < 0)
            return r;
        for (unsigned long i = 0; i < chunk; i++)
            if (dst[got + i] == 0)
                return (long)(got + i);
        got += chunk;
    }
    return -LX_ENAMETOOLONG;
}

struct timespec {
    int64_t sec, nsec;
};

static long put_time(uint64_t user, uint64_t ns, int usec)
{
    struct timespec t = {(int64_t)(ns / 1000000000u), (int64_t)(ns % 1000000000u)};
    if (usec)
        t.nsec /= 1000;
    return lx_copy_out(user, &t, sizeof t);
}

static long do_sleep_until(uint64_t deadline)
{
    while (lx_now_ns(0) < deadline)
        pvm_block(deadline); /* an event wakes it early: check and sleep again */
    return 0;
}

static long do_nanosleep(uint64_t clk, uint64_t flags, uint64_t ureq)
{
    struct timespec t;
    long r = lx_copy_in(&t, ureq, sizeof t);
    if (r < 0)
        return r;
    if (t.sec < 0 || t.nsec < 0 || t.nsec >= 1000000000)
        return -LX_EINVAL;
    uint64_t ns = (uint64_t)t.sec * 1000000000u + (uint64_t)t.nsec;
    int realtime = clk == 0 || clk == 5;
    if (flags & 1) { /* TIMER_ABSTIME */
        uint64_t now = lx_now_ns(realtime);
        return do_sleep_until(lx_now_ns(0) + (ns > now ? ns - now : 0));
    }
    return do_sleep_until(lx_now_ns(0) + ns);
}

/* xoshiro256**, seeded by the host's urandom (AT_RANDOM comes from the host too). */
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t rng_next(void)
{
    uint64_t *s = lx.rng, r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static long do_getrandom(uint64_t buf, uint64_t len)
{
    uint64_t block[32];
    if (len > 33554431)
        len = 33554431;
    for (uint64_t done = 0; done < len;) {
        uint64_t n = len - done < sizeof block ? len - done : sizeof block;
        for (unsigned i = 0; i < 32; i++)
            block[i] = rng_next();
        long r = lx_copy_out(buf + done, block, n);
        if (r < 0)
            return done ? (long)done : r;
        done += n;
    }
    return (long)len;
}

static long do_uname(uint64_t buf)
{
    static char u[6][65];
    static const char *const f[6] = {"Linux", "pyvmm", "6.1.0-pyvmm", "#1 pyvmm exec", "x86_64", "(none)"};
    memset(u, 0, sizeof u);
    for (int i = 0; i < 6; i++)
        memcpy(u[i], f[i], strlen(f[i]));
    return lx_copy_out(buf, u, sizeof u);
}

static long do_prlimit(uint64_t resource, uint64_t old)
{
    uint64_t lim[2] = {~0ULL, ~0ULL};
    if (resource >= 16)
        return -LX_EINVAL;
    if (resource == 3) /* RLIMIT_STACK */
        lim[0] = 8ULL << 20;
    if (resource == 7) /* RLIMIT_NOFILE */
        lim[0] = lim[1] = LX_MAX_FDS;
    return old ? lx_copy_out(old, lim, sizeof lim) : 0;
}

static long do_futex(uint64_t uaddr, uint64_t op, uint64_t val)
{
    switch (op & 0x7f) {
    case 0: /* FUTEX_WAIT */
    case 9: { /* FUTEX_WAIT_BITSET */
        uint32_t cur;
        long r = lx_copy_in(&cur, uaddr, sizeof cur);
        if (r < 0)
            return r;
        /* One thread: nobody could wake it. Report a timeout instead of sleeping forever. */
        return cur != (uint32_t)val ? -LX_EAGAIN : -LX_ETIMEDOUT;
    }
    case 1:  /* FUTEX_WAKE */
    case 10: /* FUTEX_WAKE_BITSET */
        return 0;
    }
    return -LX_ENOSYS;
}

/* kill/tkill/tgkill to itself: 0 probes; any other signal ends the program (no handlers run). */
static long do_signal_self(int64_t pid, uint64_t sig)
{
    if (pid != 1 && pid != 0 && pid != -1)
        return -LX_ESRCH;
    if (sig >= 65)
        return -LX_EINVAL;
    if (sig == 0 || sig == 17 || sig == 23 || sig == 28) /* none, SIGCHLD, SIGURG, SIGWINCH: ignored */
        return 0;
    kprintf("pyvmm exec: killed by signal %lu\n", sig);
    lx_kill((int)sig);
}

long lx_misc_call(long nr, const uint64_t *a, int *handled)
{
    *handled = 1;
    switch (nr) {
    case 60:  /* exit */
    case 231: /* exit_group */
        lx_exit((int)a[0]);
    case 158: /* arch_prctl */
        switch (a[0]) {
        case 0x1001: /* ARCH_SET_GS */
        case 0x1002: /* ARCH_SET_FS */
            if (a[1] >= PVM_AS_USER_END)
                return -LX_EPERM;
            wrmsr64(a[0] == 0x1002 ? MSR_FS_BASE : MSR_GS_BASE, a[1]);
            return 0;
        case 0x1003: /* ARCH_GET_FS */
        case 0x1004: { /* ARCH_GET_GS */
            uint64_t v = rdmsr64(a[0] == 0x1003 ? MSR_FS_BASE : MSR_GS_BASE);
            return lx_copy_out(a[1], &v, sizeof v);
        }
        }
        return -LX_EINVAL;
    case 218: /* set_tid_address */
        return 1;
    case 273: /* set_robust_list */
        return 0;
    case 39:  /* getpid */
    case 186: /* gettid */
        return 1;
    case 110: /* getppid */
        return 0;
    case 102: /* getuid */
    case 107: /* geteuid */
        return lx.uid;
    case 104: /* getgid */
    case 108: /* getegid */
        return lx.gid;
    case 95: /* umask */
        return 022;
    case 63: /* uname */
        return do_uname(a[0]);
    case 24: /* sched_yield */
        return 0;
    case 228: /* clock_gettime */
        if (a[0] > 11)
            return -LX_EINVAL;
        return put_time(a[1], lx_now_ns(a[0] == 0 || a[0] == 5 || a[0] == 8 || a[0] == 11), 0);
    case 229: /* clock_getres */
        return a[1] ? put_time(a[1], 1, 0) : 0;
    case 96: /* gettimeofday */
        return a[0] ? put_time(a[0], lx_now_ns(1), 1) : 0;
    case 201: { /* time */
        long t = (long)(lx_now_ns(1) / 1000000000u);
        if (a[0]) {
            long r = lx_copy_out(a[0], &t, sizeof t);
            if (r < 0)
                return r;
        }
        return t;
    }
    case 35: /* nanosleep */
        return do_nanosleep(1, 0, a[0]);
    case 230: /* clock_nanosleep */
        return do_nanosleep(a[0], a[1], a[2]);
    case 318: /* getrandom */
        return do_getrandom(a[0], a[1]);
    case 202: /* futex */
        return do_futex(a[0], a[1], a[2]);
    case 62: /* kill */
        return do_signal_self((int64_t)a[0], a[1]);
    case 200: /* tkill */
        return do_signal_self(a[0] == 1 ? 1 : -2, a[1]);
    case 234: /* tgkill */
        return do_signal_self(a[0] == 1 && a[1] == 1 ? 1 : -2, a[2]);
    case 13: { /* rt_sigaction: accepted, never delivered */
        if (a[0] == 0 || a[0] >= 65 || a[0] == 9 || a[0] == 19)
            return a[0] == 9 || a[0] == 19 ? -LX_EINVAL : -LX_EINVAL;
        if (a[2]) {
            uint64_t zero[4] = {0, 0, 0, 0};
            return lx_copy_out(a[2], zero, sizeof zero);
        }
        return 0;
    }
    case 14: /* rt_sigprocmask */
        if (a[2]) {
            uint64_t zero = 0;
            return lx_copy_out(a[2], &zero, sizeof zero);
        }
        return 0;
    case 131: /* sigaltstack */
        if (a[1]) {
            uint64_t ss[3] = {0, 2 /* SS_DISABLE */, 0};
            return lx_copy_out(a[1], ss, sizeof ss);
        }
        return 0;
    case 302: /* prlimit64 */
        if (a[0] != 0 && a[0] != 1)
            return -LX_ESRCH;
        return do_prlimit(a[1], a[3]);
    case 97: /* getrlimit */
        return do_prlimit(a[0], a[1]);
    }
    *handled = 0;
    return 0;
}
