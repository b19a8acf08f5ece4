/* pyvmm exec measurements, the same binary native and under pyvmm: prints one JSON object.
 *   hash N_MIB    FNV-1a over N MiB in memory (compute-bound, CPL3 only)
 *   getpid N      N getpid system calls (ns per call)
 *   touch N_MIB   first touch of N MiB of fresh anonymous memory (ns per page) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    long n = atol(argv[2]);
    if (!strcmp(argv[1], "hash")) {
        size_t len = (size_t)n << 20;
        unsigned char *p = malloc(len);
        for (size_t i = 0; i < len; i++)
            p[i] = (unsigned char)(i * 7);
        double t = now();
        unsigned long long h = 0xcbf29ce484222325ULL;
        for (size_t i = 0; i < len; i++)
            h = (h ^ p[i]) * 0x100000001b3ULL;
        printf("{\"case\": \"hash\", \"seconds\": %.6f, \"check\": \"%llx\"}\n", now() - t, h);
    } else if (!strcmp(argv[1], "getpid")) {
        double t = now();
        for (long i = 0; i < n; i++)
            syscall(SYS_getpid);
        printf("{\"case\": \"getpid\", \"ns_per_call\": %.1f}\n", (now() - t) * 1e9 / n);
    } else if (!strcmp(argv[1], "touch")) {
        size_t len = (size_t)n << 20;
        double t = now();
        volatile char *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (size_t i = 0; i < len; i += 4096)
            p[i] = 1;
        printf("{\"case\": \"touch\", \"ns_per_page\": %.1f}\n", (now() - t) * 1e9 / (len / 4096));
    }
    return 0;
}
