/* test=halt: HLT with interrupts on wakes for the timer event; then `cli; hlt`
 * with nothing left to wake the vCPU is reported by the VMM as a crash. */
#include "arch.h"
#include "events.h"
#include "lib.h"
#include "programs.h"

static volatile int ticked;
static void on_tick(unsigned p, void *a) { (void)p; (void)a; ticked = 1; }

static int halt_main(void)
{
    long port = evt_bind_virq(PVM_VIRQ_TIMER, 0);
    evt_set_handler((unsigned)port, on_tick, 0);
    pvm_timer_set((uint64_t)pvm_clock(PVM_CLOCK_MONOTONIC) + 2000000);
    irq_enable();
    while (!ticked)
        __asm__ volatile("hlt");
    kprintf("halt: woken from HLT by the timer\n");
    pvm_hypercall(PVM_HC_EVENT_CLOSE, (uint64_t)port, 0, 0, 0, 0);
    irq_disable();
    __asm__ volatile("hlt");
    kprintf("halt: still here?\n");
    return 1;
}
PROGRAM(halt);
