/* test=smperr: bad ports, vCPU ids, clocks, deadlines and batches get their documented errnos. */
#include "events.h"
#include "lib.h"
#include "programs.h"

static int bad;

static void check(const char *what, long got, long want)
{
    kprintf("smperr %s: %ld%s\n", what, got, got == want ? "" : " (WRONG)");
    bad += got != want;
}

static void idle(unsigned cpu) { (void)cpu; }

static int smperr_main(void)
{
    check("vcpu_up-bad-id", pvm_hypercall(PVM_HC_VCPU_UP, 999, 0x200000, 0x300000, 0, 0), -PVM_EINVAL);
    check("vcpu_up-running", pvm_hypercall(PVM_HC_VCPU_UP, 0, 0x200000, 0x300000, 0, 0), -PVM_EBUSY);
    check("vcpu_up-entry-outside-ram",
          pvm_hypercall(PVM_HC_VCPU_UP, 1, boot_info->mem_size + 0x1000, 0x300000, 0, 0), -PVM_EFAULT);
    if (boot_info->nr_vcpus > 1) {
        check("vcpu_up-ok", smp_start(1, idle), 0);
        check("vcpu_up-twice", smp_start(1, idle), -PVM_EBUSY);
    }
    check("notify-port0", pvm_notify(0), -PVM_EINVAL);
    check("notify-unbound", pvm_notify(77), -PVM_EINVAL);
    check("notify-huge", pvm_notify(1u << 31), -PVM_EINVAL);
    check("bind-bad-vcpu", evt_bind_ipi(999), -PVM_EINVAL);
    check("bind-bad-kind", pvm_hypercall(PVM_HC_EVENT_BIND, 42, 0, 0, 0, 0), -PVM_EINVAL);
    check("bind-bad-virq", evt_bind_virq(7, 0), -PVM_EINVAL);
    check("bind-bad-channel", evt_bind_channel(99, 0), -PVM_EBADF);
    long port = evt_bind_virq(PVM_VIRQ_TIMER, 0);
    check("bind-virq-twice", evt_bind_virq(PVM_VIRQ_TIMER, 0), -PVM_EBUSY);
    check("notify-virq-port", pvm_notify((unsigned)port), -PVM_EINVAL);
    check("close-unbound", pvm_hypercall(PVM_HC_EVENT_CLOSE, 300, 0, 0, 0, 0), -PVM_EINVAL);
    check("close-ok", pvm_hypercall(PVM_HC_EVENT_CLOSE, (uint64_t)port, 0, 0, 0, 0), 0);
    check("timer-past", pvm_timer_set(1), -PVM_ETIME);
    check("timer-cancel", pvm_timer_set(0), 0);
    check("clock-bad", pvm_clock(9), -PVM_EINVAL);
    check("multicall-too-many", pvm_hypercall(PVM_HC_MULTICALL, 0x300000, PVM_MULTICALL_MAX + 1, 0, 0, 0), -PVM_E2BIG);
    check("multicall-bad-pointer", pvm_hypercall(PVM_HC_MULTICALL, boot_info->mem_size - 8, 2, 0, 0, 0), -PVM_EFAULT);
    kprintf("smperr: %s\n", bad ? "FAIL" : "ok");
    return bad ? 1 : 0;
}
PROGRAM(smperr);
