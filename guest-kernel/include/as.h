/* Guest side of the address-space hypercalls (pagetable-set): thin wrappers. */
#ifndef AS_H
#define AS_H

#include "pvm.h"

static inline long as_create(void) { return pvm_hypercall(PVM_HC_AS_CREATE, 0, 0, 0, 0, 0); }
static inline long as_destroy(long h) { return pvm_hypercall(PVM_HC_AS_DESTROY, h, 0, 0, 0, 0); }
static inline long as_switch(long h) { return pvm_hypercall(PVM_HC_AS_SWITCH, h, 0, 0, 0, 0); }
static inline long as_clone(long h) { return pvm_hypercall(PVM_HC_AS_CLONE, h, 0, 0, 0, 0); }
static inline long as_map(long h, uint64_t va, uint64_t gpa, uint64_t len, unsigned prot)
{
    return pvm_hypercall(PVM_HC_AS_MAP, h, va, gpa, len, prot);
}
static inline long as_unmap(long h, uint64_t va, uint64_t len) { return pvm_hypercall(PVM_HC_AS_UNMAP, h, va, len, 0, 0); }
static inline long as_protect(long h, uint64_t va, uint64_t len, unsigned prot)
{
    return pvm_hypercall(PVM_HC_AS_PROTECT, h, va, len, prot, 0);
}
static inline long as_lazy(long h, uint64_t va, uint64_t len, unsigned prot)
{
    return pvm_hypercall(PVM_HC_AS_LAZY, h, va, len, prot, 0);
}
static inline long as_batch(long h, struct pvm_as_op *ops, unsigned long count)
{
    return pvm_hypercall(PVM_HC_AS_MAP_BATCH, h, (unsigned long)ops, count, 0, 0);
}
static inline long as_donate(uint64_t gpa, uint64_t len) { return pvm_hypercall(PVM_HC_AS_DONATE, gpa, len, 0, 0, 0); }
static inline long as_page_fault(long h, uint64_t va, uint64_t err, uint64_t rip)
{
    return pvm_hypercall(PVM_HC_PAGE_FAULT, h, va, err, rip, 0);
}

#endif
