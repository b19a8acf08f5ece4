/* The Linux process personality of the bundled kernel (test=exec, driven by `pyvmm exec`):
 * one unmodified static x86-64 Linux program as a CPL3 task in a low-window address space,
 * its system calls served here through hypercalls. See docs/exec.md.
 *
 * The rule that makes the low window work: while the program's space is loaded, the kernel
 * touches only its first 4 MiB (image, stacks, these buffers) through its identity map. Data
 * moves between channels and the program's pages with USER_SEND/USER_RECV (the VMM walks the
 * program's tables), and the few small structures the kernel reads or writes itself go
 * through copy_user, which turns a fault it cannot serve into -EFAULT. */
#ifndef LINUX_H
#define LINUX_H

#include <stdint.h>

#include "arch.h"
#include "events.h"
#include "lib.h"

#define LX_EPERM 1
#define LX_ENOENT 2
#define LX_ESRCH 3
#define LX_EINTR 4
#define LX_EBADF 9
#define LX_EAGAIN 11
#define LX_ENOMEM 12
#define LX_EFAULT 14
#define LX_ENOTDIR 20
#define LX_EINVAL 22
#define LX_EMFILE 24
#define LX_ENOTTY 25
#define LX_ESPIPE 29
#define LX_EROFS 30
#define LX_ERANGE 34
#define LX_ENAMETOOLONG 36
#define LX_ENOSYS 38
#define LX_ETIMEDOUT 110

#define LX_AT_FDCWD (-100)
#define LX_PATH_MAX 256 /* paths the kernel builds (cwd + relative); longer: -ENAMETOOLONG */
#define LX_MAX_FDS 64

/* The process: one, single-threaded. */
struct lx_proc {
    long as;               /* its address space */
    long share;            /* the share channel, -1 without --share */
    long program;          /* the program file's channel (file mappings of it are not needed) */
    uint64_t brk_start, brk, brk_max;
    uint64_t mmap_next, mmap_end;
    uint64_t rng[4];       /* getrandom's generator state, seeded by the host */
    uint32_t uid, gid;
    char cwd[LX_PATH_MAX];
};
extern struct lx_proc lx;

/* copy_user (linux/uaccess.S): 0, or -EFAULT when a fault in it was refused. */
long copy_user(void *dst, const void *src, unsigned long n);
/* Is [addr, addr+n) inside the program's window (never the kernel's first 4 MiB)? */
int lx_user_range(uint64_t addr, uint64_t n);
long lx_copy_in(void *dst, uint64_t user, unsigned long n);
long lx_copy_out(uint64_t user, const void *src, unsigned long n);
/* A NUL-terminated user string of at most max-1 bytes into dst: its length, or -errno. */
long lx_string_in(char *dst, uint64_t user, unsigned long max);

/* linux/fs.c */
void lx_fs_init(long stdout_h, long stderr_h);
long lx_fs_call(long nr, const uint64_t *a, int *handled);
/* linux/mm.c */
long lx_mm_call(long nr, const uint64_t *a, int *handled);
/* linux/exec.c: end the process as if killed by signal sig (exit status 128 + sig). */
__attribute__((noreturn)) void lx_kill(int sig);
__attribute__((noreturn)) void lx_exit(int code);
uint64_t lx_now_ns(int realtime);

#endif
