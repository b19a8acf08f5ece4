/* What a hostile or buggy program may do; each case reports what it got (or dies). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *what, long r)
{
    printf("%s: %ld errno=%d\n", what, r, r < 0 ? errno : 0);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *c = argv[1];
    if (!strcmp(c, "segv")) {
        printf("about to fault\n");
        fflush(stdout);
        *(volatile int *)0x12345678 = 1;
    } else if (!strcmp(c, "write-text")) {
        *(volatile char *)(void *)main = 0;
    } else if (!strcmp(c, "jump-kernel")) {
        ((void (*)(void))0x200000)();
    } else if (!strcmp(c, "ud")) {
        __asm__ volatile("ud2");
    } else if (!strcmp(c, "abort")) {
        abort();
    } else if (!strcmp(c, "pointers")) {
        report("write-kernel", write(1, (void *)0x200000, 16));
        report("write-unmapped", write(1, (void *)0x700000000000, 16));
        report("write-noncanonical", write(1, (void *)0xffff800000000000, 16));
        report("read-into-text", read(0, (void *)main, 16));
        report("stat-kernel", syscall(SYS_stat, (void *)0x201000, (void *)0x202000));
        report("open-bad-path", open((char *)0x300000, O_RDONLY));
        report("writev-bad-iov", syscall(SYS_writev, 1, (void *)0x200000, 1));
        report("getcwd-kernel", syscall(SYS_getcwd, (void *)0x200000, 100));
        report("clock-kernel", syscall(SYS_clock_gettime, 0, (void *)0x200000));
        report("mmap-fixed-kernel", (long)mmap((void *)0x200000, 4096, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        report("unknown-999", syscall(999));
        report("unknown-fork", syscall(SYS_fork));
    } else if (!strcmp(c, "escape")) {
        report("dotdot", open("../../../../etc/passwd", O_RDONLY));
        report("abs-link", open("/abs-link", O_RDONLY));
        report("rel-link-out", open("/out-link/passwd", O_RDONLY));
        report("write-ro", open("/new-file", O_WRONLY | O_CREAT, 0644));
    } else if (!strcmp(c, "hog")) {
        unsigned long mib = 0;
        for (;;) {
            char *p = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) {
                report("mmap", -1);
                break;
            }
            memset(p, 1, 1 << 20); /* dies here (SIGSEGV) when no frame is left for a fault */
            mib++;
            if (mib % 16 == 0) {
                printf("%lu MiB\n", mib);
                fflush(stdout);
            }
        }
    }
    return 0;
}
