/* Generated from pyvmm/paravirt/abi.py by `python -m pyvmm.paravirt.cheader`. Do not edit. */
#ifndef PYVMM_ABI_H
#define PYVMM_ABI_H

/* Constants are usable from assembly; structures only from C. */

#define PVM_ABI_VERSION_MAJOR 1
#define PVM_ABI_VERSION_MINOR 3
#define PVM_ABI_VERSION 0x10003
#define PVM_HYPERCALL_PORT 0xf5
#define PVM_BOOT_INFO_MAGIC 0x4f464e494d4d5650ULL
#define PVM_CMDLINE_MAX 4095
#define PVM_CONSOLE_HANDLE 0
#define PVM_MAX_CHANNELS 16
#define PVM_CHANNEL_NAME_LEN 24

/* Guest-physical layout */
#define PVM_LAYOUT_NULL_PAGE 0x0
#define PVM_LAYOUT_BOOT_INFO 0x1000
#define PVM_LAYOUT_CMDLINE 0x2000
#define PVM_LAYOUT_GDT 0x3000
#define PVM_LAYOUT_SHARED_PAGE 0x4000
#define PVM_LAYOUT_PAGE_TABLE_POOL 0x10000
#define PVM_LAYOUT_RESERVED_END 0x200000

/* Hypercall numbers (rax) */
#define PVM_HC_NULL 0x0
#define PVM_HC_SHUTDOWN 0x1
#define PVM_HC_SEND 0x2
#define PVM_HC_RECV 0x3
#define PVM_HC_NOTIFY 0x4
#define PVM_HC_BLOCK 0x5
#define PVM_HC_YIELD 0x6
#define PVM_HC_TIMER_SET 0x7
#define PVM_HC_CLOCK_GET 0x8
#define PVM_HC_VCPU_UP 0x9
#define PVM_HC_MULTICALL 0xa
#define PVM_HC_EVENT_BIND 0xb
#define PVM_HC_EVENT_CLOSE 0xc
#define PVM_HC_CHANNEL_FLUSH 0xd
#define PVM_HC_CHANNEL_INFO 0xe
#define PVM_HC_CHANNEL_OPEN 0xf
#define PVM_HC_CHANNEL_CLOSE 0x10
#define PVM_HC_FILE_STAT 0x11
#define PVM_HC_SNAPSHOT 0x12
#define PVM_HC_AS_CREATE 0x20
#define PVM_HC_AS_DESTROY 0x21
#define PVM_HC_AS_MAP 0x22
#define PVM_HC_AS_UNMAP 0x23
#define PVM_HC_AS_PROTECT 0x24
#define PVM_HC_AS_SWITCH 0x25
#define PVM_HC_AS_CLONE 0x26
#define PVM_HC_AS_MAP_BATCH 0x27
#define PVM_HC_AS_LAZY 0x28
#define PVM_HC_PAGE_FAULT 0x29
#define PVM_HC_AS_DONATE 0x2a
#define PVM_HC_USER_SEND 0x2b
#define PVM_HC_USER_RECV 0x2c

/* Error numbers: a failing hypercall returns -PVM_E* */
#define PVM_EPERM 1
#define PVM_ENOENT 2
#define PVM_ESRCH 3
#define PVM_EIO 5
#define PVM_E2BIG 7
#define PVM_EBADF 9
#define PVM_EAGAIN 11
#define PVM_ENOMEM 12
#define PVM_EACCES 13
#define PVM_EFAULT 14
#define PVM_EBUSY 16
#define PVM_EEXIST 17
#define PVM_EXDEV 18
#define PVM_ENOTDIR 20
#define PVM_EISDIR 21
#define PVM_EINVAL 22
#define PVM_EMFILE 24
#define PVM_ENOTTY 25
#define PVM_EFBIG 27
#define PVM_ENOSPC 28
#define PVM_ESPIPE 29
#define PVM_EROFS 30
#define PVM_EPIPE 32
#define PVM_ERANGE 34
#define PVM_ENAMETOOLONG 36
#define PVM_ENOSYS 38
#define PVM_ENOTEMPTY 39
#define PVM_ELOOP 40
#define PVM_ETIME 62
#define PVM_ECONNRESET 104
#define PVM_ETIMEDOUT 110

/* Feature bits in pvm_boot_info.features */
#define PVM_FEAT_CONSOLE 0x1
#define PVM_FEAT_EVENTS 0x2
#define PVM_FEAT_TIMER 0x4
#define PVM_FEAT_SMP 0x8
#define PVM_FEAT_MULTICALL 0x10
#define PVM_FEAT_BLOCK_DEVICE 0x20
#define PVM_FEAT_INTER_VM 0x40
#define PVM_FEAT_ADDRESS_SPACES 0x80
#define PVM_FEAT_EXTENSIONS 0x100
#define PVM_FEAT_FILES 0x200
#define PVM_FEAT_SHARE 0x400
#define PVM_FEAT_SNAPSHOT 0x800

/* Channel kinds */
#define PVM_CHANNEL_CONSOLE 0x1
#define PVM_CHANNEL_BLOCK 0x2
#define PVM_CHANNEL_STREAM 0x3
#define PVM_CHANNEL_NULL_SINK 0x4
#define PVM_CHANNEL_SHARE 0x5
#define PVM_CHANNEL_FILE 0x6
#define PVM_CHANNEL_DIR 0x7
#define PVM_CHANNEL_PATH 0x8

/* Events */
#define PVM_EVENT_IPI 0x1
#define PVM_EVENT_VIRQ 0x2
#define PVM_EVENT_CHANNEL 0x3
#define PVM_VIRQ_TIMER 0x0
#define PVM_CLOCK_MONOTONIC 0x0
#define PVM_CLOCK_REALTIME 0x1
#define PVM_UPCALL_VECTOR 32
#define PVM_NR_PORTS 512
#define PVM_PORTS_PER_GROUP 64
#define PVM_MAX_VCPUS 64
#define PVM_MULTICALL_MAX 1024
#define PVM_CHAN_READABLE 0x1
#define PVM_CHAN_WRITABLE 0x2
#define PVM_CHAN_CONNECTED 0x4
#define PVM_CHAN_CLOSED 0x8

/* Address spaces: prot bits, batch ops, page-fault error code, user window */
#define PVM_PROT_READ 0x1
#define PVM_PROT_WRITE 0x2
#define PVM_PROT_EXEC 0x4
#define PVM_PROT_USER 0x8
#define PVM_AS_OP_MAP 0x1
#define PVM_AS_OP_UNMAP 0x2
#define PVM_AS_OP_PROTECT 0x3
#define PVM_AS_OP_LAZY 0x4
#define PVM_PF_PRESENT 0x1
#define PVM_PF_WRITE 0x2
#define PVM_PF_USER 0x4
#define PVM_PF_RSVD 0x8
#define PVM_PF_FETCH 0x10
#define PVM_AS_USER_BASE 0x8000000000ULL
#define PVM_AS_USER_END 0x800000000000ULL
#define PVM_AS_LOW_BASE 0x400000ULL
#define PVM_AS_CREATE_LOW_WINDOW 0x1
#define PVM_AS_KERNEL_HANDLE 0
#define PVM_AS_BATCH_MAX 4096

/* The extension range: hypercalls registered in Python (ABI 1.1) */
#define PVM_EXT_BASE 64
#define PVM_EXT_COUNT 64

/* Shares and files (ABI 1.2): CHANNEL_OPEN flags are Linux's O_* values */
#define PVM_O_WRONLY 0x1
#define PVM_O_RDWR 0x2
#define PVM_O_CREAT 0x40
#define PVM_O_EXCL 0x80
#define PVM_O_TRUNC 0x200
#define PVM_O_APPEND 0x400
#define PVM_O_DIRECTORY 0x10000
#define PVM_O_NOFOLLOW 0x20000
#define PVM_O_CLOEXEC 0x80000
#define PVM_O_PATH 0x200000

/* pyvmm exec: the manifest on the "exec" channel */
#define PVM_EXEC_MAGIC 0x31434558454d5650ULL
#define PVM_EXEC_MAX_REGIONS 16
#define PVM_EXEC_MAX_COPIES 16
#define PVM_EXEC_CWD_MAX 256
#define PVM_EXEC_NR_SYSCALLS 512
#define PVM_EXEC_STATS 0x1

#ifndef __ASSEMBLER__
#include <stdint.h>

struct pvm_channel_info {
    uint32_t handle;
    uint32_t kind;
    char name[24];
};
_Static_assert(sizeof(struct pvm_channel_info) == 32, "ABI size");
_Static_assert(__builtin_offsetof(struct pvm_channel_info, handle) == 0, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_channel_info, kind) == 4, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_channel_info, name) == 8, "ABI offset");

struct pvm_boot_info {
    uint64_t magic;
    uint32_t abi_version;
    uint32_t features;
    uint64_t mem_size;
    uint64_t cmdline;
    uint32_t cmdline_len;
    uint32_t nr_vcpus;
    uint64_t tsc_khz;
    uint64_t shared_page;
    uint64_t reserved_end;
    uint32_t hypercall_port;
    uint32_t nr_channels;
    struct pvm_channel_info channels[16];
    uint64_t tsc_at_boot;
    uint64_t monotonic_at_boot;
    uint32_t upcall_vector;
    uint32_t nr_ports;
    uint32_t ext_base;
    uint32_t ext_count;
    uint64_t ext_registered;
    uint64_t clone_id;
    uint64_t clone_seed;
};
_Static_assert(sizeof(struct pvm_boot_info) == 640, "ABI size");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, magic) == 0, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, abi_version) == 8, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, features) == 12, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, mem_size) == 16, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, cmdline) == 24, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, cmdline_len) == 32, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, nr_vcpus) == 36, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, tsc_khz) == 40, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, shared_page) == 48, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, reserved_end) == 56, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, hypercall_port) == 64, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, nr_channels) == 68, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, channels) == 72, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, tsc_at_boot) == 584, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, monotonic_at_boot) == 592, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, upcall_vector) == 600, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, nr_ports) == 604, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, ext_base) == 608, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, ext_count) == 612, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, ext_registered) == 616, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, clone_id) == 624, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_boot_info, clone_seed) == 632, "ABI offset");

struct pvm_vcpu_event_info {
    uint8_t upcall_pending;
    uint8_t upcall_mask;
    uint8_t pad[6];
    uint8_t pending_sel[8];
};
_Static_assert(sizeof(struct pvm_vcpu_event_info) == 16, "ABI size");
_Static_assert(__builtin_offsetof(struct pvm_vcpu_event_info, upcall_pending) == 0, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_vcpu_event_info, upcall_mask) == 1, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_vcpu_event_info, pad) == 2, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_vcpu_event_info, pending_sel) == 8, "ABI offset");

struct pvm_shared_info {
    uint8_t evtchn_pending[512];
    uint8_t evtchn_mask[512];
    struct pvm_vcpu_event_info vcpu[64];
};
_Static_assert(sizeof(struct pvm_shared_info) == 2048, "ABI size");
_Static_assert(__builtin_offsetof(struct pvm_shared_info, evtchn_pending) == 0, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_shared_info, evtchn_mask) == 512, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_shared_info, vcpu) == 1024, "ABI offset");

struct pvm_multicall_entry {
    uint64_t nr;
    uint64_t args[5];
    uint64_t result;
};
_Static_assert(sizeof(struct pvm_multicall_entry) == 56, "ABI size");
_Static_assert(__builtin_offsetof(struct pvm_multicall_entry, nr) == 0, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_multicall_entry, args) == 8, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_multicall_entry, result) == 48, "ABI offset");

struct pvm_channel_stat {
    uint32_t kind;
    uint32_t flags;
    uint64_t size;
};
_Static_assert(sizeof(struct pvm_channel_stat) == 16, "ABI size");
_Static_assert(__builtin_offsetof(struct pvm_channel_stat, kind) == 0, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_channel_stat, flags) == 4, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_channel_stat, size) == 8, "ABI offset");

struct pvm_as_op {
    uint32_t op;
    uint32_t prot;
    uint64_t va;
    uint64_t gpa;
    uint64_t len;
    int64_t result;
};
_Static_assert(sizeof(struct pvm_as_op) == 40, "ABI size");
_Static_assert(__builtin_offsetof(struct pvm_as_op, op) == 0, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_as_op, prot) == 4, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_as_op, va) == 8, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_as_op, gpa) == 16, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_as_op, len) == 24, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_as_op, result) == 32, "ABI offset");

struct pvm_file_stat {
    uint32_t mode;
    uint32_t nlink;
    uint32_t uid;
    uint32_t gid;
    uint64_t size;
    uint64_t ino;
    uint64_t dev;
    uint64_t blocks;
    int64_t atime_ns;
    int64_t mtime_ns;
    int64_t ctime_ns;
    uint64_t rdev;
};
_Static_assert(sizeof(struct pvm_file_stat) == 80, "ABI size");
_Static_assert(__builtin_offsetof(struct pvm_file_stat, mode) == 0, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_file_stat, nlink) == 4, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_file_stat, uid) == 8, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_file_stat, gid) == 12, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_file_stat, size) == 16, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_file_stat, ino) == 24, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_file_stat, dev) == 32, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_file_stat, blocks) == 40, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_file_stat, atime_ns) == 48, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_file_stat, mtime_ns) == 56, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_file_stat, ctime_ns) == 64, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_file_stat, rdev) == 72, "ABI offset");

struct pvm_exec_region {
    uint64_t va;
    uint64_t len;
    uint32_t prot;
    uint32_t pad;
};
_Static_assert(sizeof(struct pvm_exec_region) == 24, "ABI size");
_Static_assert(__builtin_offsetof(struct pvm_exec_region, va) == 0, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_region, len) == 8, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_region, prot) == 16, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_region, pad) == 20, "ABI offset");

struct pvm_exec_copy {
    uint64_t va;
    uint64_t file_off;
    uint64_t len;
};
_Static_assert(sizeof(struct pvm_exec_copy) == 24, "ABI size");
_Static_assert(__builtin_offsetof(struct pvm_exec_copy, va) == 0, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_copy, file_off) == 8, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_copy, len) == 16, "ABI offset");

struct pvm_exec_info {
    uint64_t magic;
    uint64_t entry;
    uint64_t sp;
    uint64_t stack_lo;
    uint64_t stack_hi;
    uint64_t stack_image_off;
    uint64_t stack_image_len;
    uint64_t brk;
    uint64_t brk_max;
    uint64_t mmap_base;
    uint64_t mmap_end;
    uint64_t random[4];
    uint32_t nr_regions;
    uint32_t nr_copies;
    uint32_t uid;
    uint32_t gid;
    uint32_t flags;
    uint32_t pad;
    char cwd[256];
    struct pvm_exec_region regions[16];
    struct pvm_exec_copy copies[16];
};
_Static_assert(sizeof(struct pvm_exec_info) == 1168, "ABI size");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, magic) == 0, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, entry) == 8, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, sp) == 16, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, stack_lo) == 24, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, stack_hi) == 32, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, stack_image_off) == 40, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, stack_image_len) == 48, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, brk) == 56, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, brk_max) == 64, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, mmap_base) == 72, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, mmap_end) == 80, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, random) == 88, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, nr_regions) == 120, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, nr_copies) == 124, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, uid) == 128, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, gid) == 132, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, flags) == 136, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, pad) == 140, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, cwd) == 144, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, regions) == 400, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_info, copies) == 784, "ABI offset");

struct pvm_exec_stats {
    uint64_t magic;
    uint32_t calls[512];
    uint32_t enosys[512];
    uint32_t other;
    uint32_t pad;
};
_Static_assert(sizeof(struct pvm_exec_stats) == 4112, "ABI size");
_Static_assert(__builtin_offsetof(struct pvm_exec_stats, magic) == 0, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_stats, calls) == 8, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_stats, enosys) == 2056, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_stats, other) == 4104, "ABI offset");
_Static_assert(__builtin_offsetof(struct pvm_exec_stats, pad) == 4108, "ABI offset");
#endif /* __ASSEMBLER__ */

#endif /* PYVMM_ABI_H */
