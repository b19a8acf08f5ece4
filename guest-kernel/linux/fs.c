/* File descriptors and the file-system calls: stdin/stdout/stderr are console channels,
 * every other fd a handle CHANNEL_OPEN gave on the share. Data never passes through the
 * kernel: read/write/getdents/readlink are one USER_RECV/USER_SEND on the program's buffer. */
#include "linux.h"

#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFIFO 0010000
#define O_ACCMODE 3
#define O_OPEN_MASK (PVM_O_WRONLY | PVM_O_RDWR | PVM_O_CREAT | PVM_O_EXCL | PVM_O_TRUNC | PVM_O_APPEND | \
                     PVM_O_DIRECTORY | PVM_O_NOFOLLOW | PVM_O_PATH)
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_EMPTY_PATH 0x1000
#define SEEK_SET 0
#define SEEK_CUR 1
#define SEEK_END 2

enum fd_kind { FD_NONE, FD_IN, FD_OUT, FD_FILE, FD_DIR, FD_PATH };

struct lfile {
    enum fd_kind kind;
    long handle;
    uint64_t off;
    uint32_t flags;
    char path[LX_PATH_MAX]; /* directories: for *at() calls relative to them and fchdir */
};

static struct lfile fds[LX_MAX_FDS];
static char pathbuf[LX_PATH_MAX], userpath[LX_PATH_MAX];

/* Linux's struct stat (x86-64). */
struct lx_stat {
    uint64_t dev, ino, nlink;
    uint32_t mode, uid, gid, pad0;
    uint64_t rdev;
    int64_t size, blksize, blocks;
    uint64_t atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns;
    int64_t unused[3];
};
_Static_assert(sizeof(struct lx_stat) == 144, "struct stat");

void lx_fs_init(long stdout_h, long stderr_h)
{
    fds[0] = (struct lfile){.kind = FD_IN, .handle = PVM_CONSOLE_HANDLE};
    fds[1] = (struct lfile){.kind = FD_OUT, .handle = stdout_h, .flags = 1};
    fds[2] = (struct lfile){.kind = FD_OUT, .handle = stderr_h, .flags = 1};
}

static struct lfile *fd_get(uint64_t fd)
{
    return fd < LX_MAX_FDS && fds[fd].kind != FD_NONE ? &fds[fd] : 0;
}

static void wait_a_ms(void) { pvm_block(lx_now_ns(0) + 1000000); }

/* All of a program buffer to the console, waiting out back-pressure as kprintf does. */
static long write_console(long handle, uint64_t buf, uint64_t len)
{
    uint64_t done = 0;
    while (done < len) {
        long r = pvm_hc_user_send((unsigned long)handle, buf + done, len - done, 0, (unsigned long)lx.as);
        if (r == -PVM_EAGAIN) {
            wait_a_ms();
            continue;
        }
        if (r <= 0)
            return done ? (long)done : r;
        done += (uint64_t)r;
    }
    return (long)done;
}

static long do_read(struct lfile *f, uint64_t buf, uint64_t len, uint64_t off, int advance)
{
    if (len == 0)
        return 0;
    if (!lx_user_range(buf, len))
        return -LX_EFAULT;
    if (f->kind == FD_IN) {
        for (;;) {
            long r = pvm_hc_user_recv(PVM_CONSOLE_HANDLE, buf, len, 0, (unsigned long)lx.as);
            if (r != -PVM_EAGAIN)
                return r;
            wait_a_ms();
        }
    }
    if (f->kind == FD_DIR)
        return -21; /* EISDIR */
    if (f->kind != FD_FILE || (f->flags & O_ACCMODE) == PVM_O_WRONLY)
        return -LX_EBADF;
    long r = pvm_hc_user_recv((unsigned long)f->handle, buf, len, off, (unsigned long)lx.as);
    if (r > 0 && advance)
        f->off += (uint64_t)r;
    return r;
}

static long do_write(struct lfile *f, uint64_t buf, uint64_t len, uint64_t off, int advance)
{
    if (len == 0)
        return 0;
    if (!lx_user_range(buf, len))
        return -LX_EFAULT;
    if (f->kind == FD_OUT)
        return write_console(f->handle, buf, len);
    if (f->kind != FD_FILE || (f->flags & O_ACCMODE) == 0)
        return -LX_EBADF;
    if (advance && (f->flags & PVM_O_APPEND)) {
        struct pvm_file_stat st;
        if (pvm_hc_file_stat((unsigned long)f->handle, (unsigned long)&st) == 0)
            off = f->off = st.size;
    }
    long r = pvm_hc_user_send((unsigned long)f->handle, buf, len, off, (unsigned long)lx.as);
    if (r > 0 && advance)
        f->off += (uint64_t)r;
    return r;
}

struct iovec {
    uint64_t base, len;
};

static long do_vec(struct lfile *f, uint64_t iov, uint64_t cnt, int write)
{
    struct iovec v[16];
    long total = 0;
    if (cnt > 1024)
        return -LX_EINVAL;
    while (cnt) {
        uint64_t n = cnt < 16 ? cnt : 16;
        long r = lx_copy_in(v, iov, n * sizeof v[0]);
        if (r < 0)
            return total ? total : r;
        for (uint64_t i = 0; i < n; i++) {
            r = write ? do_write(f, v[i].base, v[i].len, f->off, 1) : do_read(f, v[i].base, v[i].len, f->off, 1);
            if (r < 0)
                return total ? total : r;
            total += r;
            if ((uint64_t)r < v[i].len)
                return total;
        }
        cnt -= n;
        iov += n * sizeof v[0];
    }
    return total;
}

static void normalise(char *p);

/* pathbuf = the share path for (dirfd, user path): joined to the base unless absolute, then
 * normalised lexically as the program's root is the share's: "/.." is "/" (never the host's
 * parent). Symbolic links are the host's business: one pointing out is refused there. */
static long resolve(int64_t dirfd, uint64_t upath, int empty_ok)
{
    long n = lx_string_in(userpath, upath, sizeof userpath);
    if (n < 0)
        return n;
    if (n == 0 && !empty_ok)
        return -LX_ENOENT;
    const char *base = lx.cwd;
    if (userpath[0] != '/') {
        if (dirfd != LX_AT_FDCWD) {
            struct lfile *d = fd_get((uint64_t)dirfd);
            if (!d)
                return -LX_EBADF;
            if (d->kind != FD_DIR && d->kind != FD_PATH)
                return -LX_ENOTDIR;
            base = d->path;
        }
    } else {
        base = "";
    }
    size_t bl = strlen(base);
    if (bl + 1 + (size_t)n + 1 > sizeof pathbuf)
        return -LX_ENAMETOOLONG;
    memcpy(pathbuf, base, bl);
    size_t pos = bl;
    if (n && userpath[0] != '/')
        pathbuf[pos++] = '/';
    memcpy(pathbuf + pos, userpath, (size_t)n + 1);
    if (n == 0)
        return (long)(pos + (size_t)n); /* AT_EMPTY_PATH: the base itself */
    normalise(pathbuf);
    return (long)strlen(pathbuf);
}

static long open_handle(const char *path, long len, uint64_t flags, uint64_t mode)
{
    if (lx.share < 0)
        return -LX_ENOENT; /* no --share: an empty file system */
    return pvm_hc_channel_open((unsigned long)lx.share, (unsigned long)path, (unsigned long)len, flags, mode);
}

static long fd_alloc(void)
{
    for (int i = 0; i < LX_MAX_FDS; i++)
        if (fds[i].kind == FD_NONE)
            return i;
    return -LX_EMFILE;
}

static long do_open(int64_t dirfd, uint64_t upath, uint64_t flags, uint64_t mode)
{
    long len = resolve(dirfd, upath, 0);
    if (len < 0)
        return len;
    long fd = fd_alloc();
    if (fd < 0)
        return fd;
    long h = open_handle(pathbuf, len, flags & O_OPEN_MASK, mode);
    if (h < 0)
        return h;
    struct pvm_channel_stat cs;
    pvm_hc_channel_info((unsigned long)h, (unsigned long)&cs);
    struct lfile *f = &fds[fd];
    f->kind = cs.kind == PVM_CHANNEL_DIR ? FD_DIR : cs.kind == PVM_CHANNEL_PATH ? FD_PATH : FD_FILE;
    f->handle = h;
    f->off = 0;
    f->flags = (uint32_t)flags;
    memcpy(f->path, pathbuf, (size_t)len + 1);
    return fd;
}

static long do_close(uint64_t fd)
{
    struct lfile *f = fd_get(fd);
    if (!f)
        return -LX_EBADF;
    if (f->kind == FD_FILE || f->kind == FD_DIR || f->kind == FD_PATH)
        pvm_hc_channel_close((unsigned long)f->handle);
    f->kind = FD_NONE;
    return 0;
}

static long put_stat(uint64_t ubuf, const struct pvm_file_stat *st)
{
    struct lx_stat s;
    memset(&s, 0, sizeof s);
    s.dev = st->dev;
    s.ino = st->ino;
    s.nlink = st->nlink;
    s.mode = st->mode;
    s.uid = st->uid;
    s.gid = st->gid;
    s.rdev = st->rdev;
    s.size = (int64_t)st->size;
    s.blksize = 4096;
    s.blocks = (int64_t)st->blocks;
    s.atime = (uint64_t)st->atime_ns / 1000000000u;
    s.atime_ns = (uint64_t)st->atime_ns % 1000000000u;
    s.mtime = (uint64_t)st->mtime_ns / 1000000000u;
    s.mtime_ns = (uint64_t)st->mtime_ns % 1000000000u;
    s.ctime = (uint64_t)st->ctime_ns / 1000000000u;
    s.ctime_ns = (uint64_t)st->ctime_ns % 1000000000u;
    return lx_copy_out(ubuf, &s, sizeof s);
}

static long do_fstat(uint64_t fd, uint64_t ubuf)
{
    struct lfile *f = fd_get(fd);
    struct pvm_file_stat st;
    if (!f)
        return -LX_EBADF;
    memset(&st, 0, sizeof st);
    if (f->kind == FD_IN || f->kind == FD_OUT) {
        st.mode = S_IFIFO | 0600; /* the host's stdio: a pipe, as far as the program can tell */
        st.nlink = 1;
        st.uid = lx.uid;
        st.gid = lx.gid;
    } else {
        long r = pvm_hc_file_stat((unsigned long)f->handle, (unsigned long)&st);
        if (r < 0)
            return r;
    }
    return put_stat(ubuf, &st);
}

static long do_fstatat(int64_t dirfd, uint64_t upath, uint64_t ubuf, uint64_t flags)
{
    if (flags & AT_EMPTY_PATH) {
        char c;
        long r = lx_copy_in(&c, upath, 1);
        if (r < 0)
            return r;
        if (c == 0)
            return dirfd == LX_AT_FDCWD ? -LX_EINVAL : do_fstat((uint64_t)dirfd, ubuf);
    }
    long len = resolve(dirfd, upath, 0);
    if (len < 0)
        return len;
    long h = open_handle(pathbuf, len, PVM_O_PATH | (flags & AT_SYMLINK_NOFOLLOW ? PVM_O_NOFOLLOW : 0), 0);
    if (h < 0)
        return h;
    struct pvm_file_stat st;
    long r = pvm_hc_file_stat((unsigned long)h, (unsigned long)&st);
    pvm_hc_channel_close((unsigned long)h);
    return r < 0 ? r : put_stat(ubuf, &st);
}

static long do_lseek(uint64_t fd, int64_t off, uint64_t whence)
{
    struct lfile *f = fd_get(fd);
    if (!f)
        return -LX_EBADF;
    if (f->kind == FD_IN || f->kind == FD_OUT)
        return -LX_ESPIPE;
    int64_t base = 0;
    if (whence == SEEK_CUR)
        base = (int64_t)f->off;
    else if (whence == SEEK_END) {
        struct pvm_file_stat st;
        long r = pvm_hc_file_stat((unsigned long)f->handle, (unsigned long)&st);
        if (r < 0)
            return r;
        base = (int64_t)st.size;
    } else if (whence != SEEK_SET)
        return -LX_EINVAL;
    if (base + off < 0 || (f->kind == FD_DIR && base + off != 0))
        return -LX_EINVAL;
    f->off = (uint64_t)(base + off);
    return (long)f->off;
}

static long do_getdents(uint64_t fd, uint64_t buf, uint64_t len)
{
    struct lfile *f = fd_get(fd);
    if (!f)
        return -LX_EBADF;
    if (f->kind != FD_DIR)
        return -LX_ENOTDIR;
    if (!lx_user_range(buf, len))
        return -LX_EFAULT;
    long r = pvm_hc_user_recv((unsigned long)f->handle, buf, len, f->off, (unsigned long)lx.as);
    if (r > 0)
        f->off += (uint64_t)r;
    return r;
}

static long do_readlink(int64_t dirfd, uint64_t upath, uint64_t buf, uint64_t size)
{
    long len = resolve(dirfd, upath, 0);
    if (len < 0)
        return len;
    if ((int64_t)size <= 0)
        return -LX_EINVAL;
    if (!lx_user_range(buf, size))
        return -LX_EFAULT;
    long h = open_handle(pathbuf, len, PVM_O_PATH | PVM_O_NOFOLLOW, 0);
    if (h < 0)
        return h;
    long r = pvm_hc_user_recv((unsigned long)h, buf, size, 0, (unsigned long)lx.as);
    pvm_hc_channel_close((unsigned long)h);
    return r;
}

static long do_access(int64_t dirfd, uint64_t upath, uint64_t mode)
{
    (void)mode; /* existence only: permissions are the host's, checked when the file is opened */
    long len = resolve(dirfd, upath, 0);
    if (len < 0)
        return len;
    long h = open_handle(pathbuf, len, PVM_O_PATH, 0);
    if (h < 0)
        return h;
    pvm_hc_channel_close((unsigned long)h);
    return 0;
}

/* Normalise an absolute path in place: "//", "." and ".." (which stops at the root). */
static void normalise(char *p)
{
    char out[LX_PATH_MAX];
    size_t o = 0;
    const char *s = p;
    while (*s) {
        while (*s == '/')
            s++;
        const char *c = s;
        while (*s && *s != '/')
            s++;
        size_t n = (size_t)(s - c);
        if (n == 0 || (n == 1 && c[0] == '.'))
            continue;
        if (n == 2 && c[0] == '.' && c[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            continue;
        }
        if (o + 1 + n >= sizeof out)
            break;
        out[o++] = '/';
        memcpy(out + o, c, n);
        o += n;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = 0;
    memcpy(p, out, o + 1);
}

static long do_chdir_path(const char *path, long len)
{
    long h = open_handle(path, len, PVM_O_PATH | PVM_O_DIRECTORY, 0);
    if (h < 0)
        return h;
    pvm_hc_channel_close((unsigned long)h);
    memcpy(lx.cwd, path, (size_t)len + 1);
    normalise(lx.cwd);
    return 0;
}

static long do_getcwd(uint64_t buf, uint64_t size)
{
    size_t n = strlen(lx.cwd) + 1;
    if (size < n)
        return -LX_ERANGE;
    long r = lx_copy_out(buf, lx.cwd, n);
    return r < 0 ? r : (long)n;
}

static long do_fcntl(uint64_t fd, uint64_t cmd, uint64_t arg)
{
    struct lfile *f = fd_get(fd);
    if (!f)
        return -LX_EBADF;
    switch (cmd) {
    case 1: /* F_GETFD */
        return 0;
    case 2: /* F_SETFD */
        return 0;
    case 3: /* F_GETFL */
        return f->flags & ~(uint32_t)PVM_O_CLOEXEC;
    case 4: /* F_SETFL: O_APPEND and O_NONBLOCK only, as Linux */
        f->flags = (f->flags & ~(uint32_t)(PVM_O_APPEND | 04000)) | (uint32_t)(arg & (PVM_O_APPEND | 04000));
        return 0;
    default:
        return -LX_EINVAL;
    }
}

long lx_fs_call(long nr, const uint64_t *a, int *handled)
{
    struct lfile *f;
    *handled = 1;
    switch (nr) {
    case 0: /* read */
        return (f = fd_get(a[0])) ? do_read(f, a[1], a[2], f->off, 1) : -LX_EBADF;
    case 1: /* write */
        return (f = fd_get(a[0])) ? do_write(f, a[1], a[2], f->off, 1) : -LX_EBADF;
    case 17: /* pread64 */
        if ((f = fd_get(a[0])) && (f->kind == FD_IN || f->kind == FD_OUT))
            return -LX_ESPIPE;
        return f ? do_read(f, a[1], a[2], a[3], 0) : -LX_EBADF;
    case 18: /* pwrite64 */
        if ((f = fd_get(a[0])) && (f->kind == FD_IN || f->kind == FD_OUT))
            return -LX_ESPIPE;
        return f ? do_write(f, a[1], a[2], a[3], 0) : -LX_EBADF;
    case 19: /* readv */
        return (f = fd_get(a[0])) ? do_vec(f, a[1], a[2], 0) : -LX_EBADF;
    case 20: /* writev */
        return (f = fd_get(a[0])) ? do_vec(f, a[1], a[2], 1) : -LX_EBADF;
    case 2: /* open */
        return do_open(LX_AT_FDCWD, a[0], a[1], a[2]);
    case 257: /* openat */
        return do_open((int32_t)a[0], a[1], a[2], a[3]);
    case 3: /* close */
        return do_close(a[0]);
    case 5: /* fstat */
        return do_fstat(a[0], a[1]);
    case 4: /* stat */
        return do_fstatat(LX_AT_FDCWD, a[0], a[1], 0);
    case 6: /* lstat */
        return do_fstatat(LX_AT_FDCWD, a[0], a[1], AT_SYMLINK_NOFOLLOW);
    case 262: /* newfstatat */
        return do_fstatat((int32_t)a[0], a[1], a[2], a[3]);
    case 8: /* lseek */
        return do_lseek(a[0], (int64_t)a[1], a[2]);
    case 217: /* getdents64 */
        return do_getdents(a[0], a[1], a[2]);
    case 89: /* readlink */
        return do_readlink(LX_AT_FDCWD, a[0], a[1], a[2]);
    case 267: /* readlinkat */
        return do_readlink((int32_t)a[0], a[1], a[2], a[3]);
    case 21: /* access */
        return do_access(LX_AT_FDCWD, a[0], a[1]);
    case 269: /* faccessat */
    case 439: /* faccessat2 */
        return do_access((int32_t)a[0], a[1], a[2]);
    case 79: /* getcwd */
        return do_getcwd(a[0], a[1]);
    case 80: { /* chdir */
        long len = resolve(LX_AT_FDCWD, a[0], 0);
        return len < 0 ? len : do_chdir_path(pathbuf, len);
    }
    case 81: /* fchdir */
        if (!(f = fd_get(a[0])))
            return -LX_EBADF;
        if (f->kind != FD_DIR && f->kind != FD_PATH)
            return -LX_ENOTDIR;
        return do_chdir_path(f->path, (long)strlen(f->path));
    case 72: /* fcntl */
        return do_fcntl(a[0], a[1], a[2]);
    case 16: /* ioctl: no terminals here (TCGETS, TIOCGWINSZ, ...) */
        return fd_get(a[0]) ? -LX_ENOTTY : -LX_EBADF;
    }
    *handled = 0;
    return 0;
}

/* The channel behind a readable regular-file fd (mmap of a file), or -errno. */
long lx_file_handle(int64_t fd)
{
    struct lfile *f = fd >= 0 ? fd_get((uint64_t)fd) : 0;
    if (!f)
        return -LX_EBADF;
    if (f->kind != FD_FILE || (f->flags & O_ACCMODE) == PVM_O_WRONLY)
        return -13; /* EACCES */
    return f->handle;
}
