/* Generated from pyvmm/paravirt/abi.py by `python -m pyvmm.paravirt.cheader`. Do not edit. */
#ifndef PYVMM_ABI_H
#define PYVMM_ABI_H

/* Constants are usable from assembly; structures only from C. */

#define PVM_ABI_VERSION_MAJOR 1
#define PVM_ABI_VERSION_MINOR 2
#define PVM_ABI_VERSION 0x10002
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
#define PVM_HC_SNAPSHOT 0xf
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

/* Error numbers: a failing hypercall returns -PVM_E* */
#define PVM_EPERM 1
#define PVM_ENOENT 2
#define PVM_EIO 5
#define PVM_E2BIG 7
#define PVM_EBADF 9
#define PVM_EAGAIN 11
#define PVM_ENOMEM 12
#define PVM_EFAULT 14
#define PVM_EBUSY 16
#define PVM_EEXIST 17
#define PVM_EINVAL 22
#define PVM_ENOSPC 28
#define PVM_EPIPE 32
#define PVM_ERANGE 34
#define PVM_ENOSYS 38
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
#define PVM_FEAT_SNAPSHOT 0x200

/* Channel kinds */
#define PVM_CHANNEL_CONSOLE 0x1
#define PVM_CHANNEL_BLOCK 0x2
#define PVM_CHANNEL_STREAM 0x3
#define PVM_CHANNEL_NULL_SINK 0x4

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
#define PVM_AS_KERNEL_HANDLE 0
#define PVM_AS_BATCH_MAX 4096

/* The extension range: hypercalls registered in Python (ABI 1.1) */
#define PVM_EXT_BASE 64
#define PVM_EXT_COUNT 64

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
#endif /* __ASSEMBLER__ */

#endif /* PYVMM_ABI_H */
