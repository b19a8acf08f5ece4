/* Generated from pyvmm/paravirt/abi.py by `python -m pyvmm.paravirt.cheader --calls`. Do not edit. */
#ifndef PYVMM_CALLS_H
#define PYVMM_CALLS_H

/* Needs pvm_hypercall() (pvm.h). */

/* NULL() -> 0 */
static inline long pvm_hc_null(void)
{
    return pvm_hypercall(PVM_HC_NULL, 0, 0, 0, 0, 0);
}

/* SHUTDOWN(code) -> does not return */
static inline long pvm_hc_shutdown(unsigned long code)
{
    return pvm_hypercall(PVM_HC_SHUTDOWN, code, 0, 0, 0, 0);
}

/* SEND(handle, buf, len, offset) -> bytes sent */
static inline long pvm_hc_send(unsigned long handle, unsigned long buf, unsigned long len, unsigned long offset)
{
    return pvm_hypercall(PVM_HC_SEND, handle, buf, len, offset, 0);
}

/* RECV(handle, buf, len, offset) -> bytes received */
static inline long pvm_hc_recv(unsigned long handle, unsigned long buf, unsigned long len, unsigned long offset)
{
    return pvm_hypercall(PVM_HC_RECV, handle, buf, len, offset, 0);
}

/* NOTIFY(port) -> 0 */
static inline long pvm_hc_notify(unsigned long port)
{
    return pvm_hypercall(PVM_HC_NOTIFY, port, 0, 0, 0, 0);
}

/* BLOCK(deadline, notify_port) -> 0 on an event, -ETIME at the deadline */
static inline long pvm_hc_block(unsigned long deadline, unsigned long notify_port)
{
    return pvm_hypercall(PVM_HC_BLOCK, deadline, notify_port, 0, 0, 0);
}

/* YIELD() -> 0 */
static inline long pvm_hc_yield(void)
{
    return pvm_hypercall(PVM_HC_YIELD, 0, 0, 0, 0, 0);
}

/* TIMER_SET(deadline) -> 0; -ETIME if already past */
static inline long pvm_hc_timer_set(unsigned long deadline)
{
    return pvm_hypercall(PVM_HC_TIMER_SET, deadline, 0, 0, 0, 0);
}

/* CLOCK_GET(clock) -> ns */
static inline long pvm_hc_clock_get(unsigned long clock)
{
    return pvm_hypercall(PVM_HC_CLOCK_GET, clock, 0, 0, 0, 0);
}

/* VCPU_UP(vcpu, entry, stack, arg) -> 0 */
static inline long pvm_hc_vcpu_up(unsigned long vcpu, unsigned long entry, unsigned long stack, unsigned long arg)
{
    return pvm_hypercall(PVM_HC_VCPU_UP, vcpu, entry, stack, arg, 0);
}

/* MULTICALL(entries, count) -> entries run */
static inline long pvm_hc_multicall(unsigned long entries, unsigned long count)
{
    return pvm_hypercall(PVM_HC_MULTICALL, entries, count, 0, 0, 0);
}

/* EVENT_BIND(kind, target, arg) -> port */
static inline long pvm_hc_event_bind(unsigned long kind, unsigned long target, unsigned long arg)
{
    return pvm_hypercall(PVM_HC_EVENT_BIND, kind, target, arg, 0, 0);
}

/* EVENT_CLOSE(port) -> 0 */
static inline long pvm_hc_event_close(unsigned long port)
{
    return pvm_hypercall(PVM_HC_EVENT_CLOSE, port, 0, 0, 0, 0);
}

/* CHANNEL_FLUSH(handle) -> 0 once written data is durable */
static inline long pvm_hc_channel_flush(unsigned long handle)
{
    return pvm_hypercall(PVM_HC_CHANNEL_FLUSH, handle, 0, 0, 0, 0);
}

/* CHANNEL_INFO(handle, info) -> 0 */
static inline long pvm_hc_channel_info(unsigned long handle, unsigned long info)
{
    return pvm_hypercall(PVM_HC_CHANNEL_INFO, handle, info, 0, 0, 0);
}

/* CHANNEL_OPEN(share, path, path_len, flags, mode) -> new handle */
static inline long pvm_hc_channel_open(unsigned long share, unsigned long path, unsigned long path_len, unsigned long flags, unsigned long mode)
{
    return pvm_hypercall(PVM_HC_CHANNEL_OPEN, share, path, path_len, flags, mode);
}

/* CHANNEL_CLOSE(handle) -> 0 */
static inline long pvm_hc_channel_close(unsigned long handle)
{
    return pvm_hypercall(PVM_HC_CHANNEL_CLOSE, handle, 0, 0, 0, 0);
}

/* FILE_STAT(handle, stat) -> 0 */
static inline long pvm_hc_file_stat(unsigned long handle, unsigned long stat)
{
    return pvm_hypercall(PVM_HC_FILE_STAT, handle, stat, 0, 0, 0);
}

/* SNAPSHOT() -> 0 in the original, the clone id in a restored copy */
static inline long pvm_hc_snapshot(void)
{
    return pvm_hypercall(PVM_HC_SNAPSHOT, 0, 0, 0, 0, 0);
}

/* AS_CREATE(flags) -> handle */
static inline long pvm_hc_as_create(unsigned long flags)
{
    return pvm_hypercall(PVM_HC_AS_CREATE, flags, 0, 0, 0, 0);
}

/* AS_DESTROY(handle) -> 0 */
static inline long pvm_hc_as_destroy(unsigned long handle)
{
    return pvm_hypercall(PVM_HC_AS_DESTROY, handle, 0, 0, 0, 0);
}

/* AS_MAP(handle, va, gpa, len, prot) -> 0 */
static inline long pvm_hc_as_map(unsigned long handle, unsigned long va, unsigned long gpa, unsigned long len, unsigned long prot)
{
    return pvm_hypercall(PVM_HC_AS_MAP, handle, va, gpa, len, prot);
}

/* AS_UNMAP(handle, va, len) -> 0 */
static inline long pvm_hc_as_unmap(unsigned long handle, unsigned long va, unsigned long len)
{
    return pvm_hypercall(PVM_HC_AS_UNMAP, handle, va, len, 0, 0);
}

/* AS_PROTECT(handle, va, len, prot) -> 0 */
static inline long pvm_hc_as_protect(unsigned long handle, unsigned long va, unsigned long len, unsigned long prot)
{
    return pvm_hypercall(PVM_HC_AS_PROTECT, handle, va, len, prot, 0);
}

/* AS_SWITCH(handle) -> 0 */
static inline long pvm_hc_as_switch(unsigned long handle)
{
    return pvm_hypercall(PVM_HC_AS_SWITCH, handle, 0, 0, 0, 0);
}

/* AS_CLONE(handle) -> new handle */
static inline long pvm_hc_as_clone(unsigned long handle)
{
    return pvm_hypercall(PVM_HC_AS_CLONE, handle, 0, 0, 0, 0);
}

/* AS_MAP_BATCH(handle, ops, count) -> ops done */
static inline long pvm_hc_as_map_batch(unsigned long handle, unsigned long ops, unsigned long count)
{
    return pvm_hypercall(PVM_HC_AS_MAP_BATCH, handle, ops, count, 0, 0);
}

/* AS_LAZY(handle, va, len, prot) -> 0 */
static inline long pvm_hc_as_lazy(unsigned long handle, unsigned long va, unsigned long len, unsigned long prot)
{
    return pvm_hypercall(PVM_HC_AS_LAZY, handle, va, len, prot, 0);
}

/* PAGE_FAULT(handle, va, error, rip) -> 0 retry, -EFAULT refused */
static inline long pvm_hc_page_fault(unsigned long handle, unsigned long va, unsigned long error, unsigned long rip)
{
    return pvm_hypercall(PVM_HC_PAGE_FAULT, handle, va, error, rip, 0);
}

/* AS_DONATE(gpa, len) -> 0 */
static inline long pvm_hc_as_donate(unsigned long gpa, unsigned long len)
{
    return pvm_hypercall(PVM_HC_AS_DONATE, gpa, len, 0, 0, 0);
}

/* USER_SEND(handle, va, len, offset, space) -> bytes sent */
static inline long pvm_hc_user_send(unsigned long handle, unsigned long va, unsigned long len, unsigned long offset, unsigned long space)
{
    return pvm_hypercall(PVM_HC_USER_SEND, handle, va, len, offset, space);
}

/* USER_RECV(handle, va, len, offset, space) -> bytes received */
static inline long pvm_hc_user_recv(unsigned long handle, unsigned long va, unsigned long len, unsigned long offset, unsigned long space)
{
    return pvm_hypercall(PVM_HC_USER_RECV, handle, va, len, offset, space);
}

#endif /* PYVMM_CALLS_H */
