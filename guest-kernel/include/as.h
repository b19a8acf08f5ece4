/* Guest side of the address-space hypercalls (pagetable-set): typed names over the generated wrappers. */
#ifndef AS_H
#define AS_H

#include "pvm.h"

static inline long as_create(void) { return pvm_hc_as_create(0); }
static inline long as_create_flags(unsigned long flags) { return pvm_hc_as_create(flags); }
static inline long as_destroy(long h) { return pvm_hc_as_destroy(h); }
static inline long as_switch(long h) { return pvm_hc_as_switch(h); }
static inline long as_clone(long h) { return pvm_hc_as_clone(h); }
static inline long as_map(long h, uint64_t va, uint64_t gpa, uint64_t len, unsigned prot)
{
    return pvm_hc_as_map(h, va, gpa, len, prot);
}
static inline long as_unmap(long h, uint64_t va, uint64_t len) { return pvm_hc_as_unmap(h, va, len); }
static inline long as_protect(long h, uint64_t va, uint64_t len, unsigned prot)
{
    return pvm_hc_as_protect(h, va, len, prot);
}
static inline long as_lazy(long h, uint64_t va, uint64_t len, unsigned prot) { return pvm_hc_as_lazy(h, va, len, prot); }
static inline long as_batch(long h, struct pvm_as_op *ops, unsigned long count)
{
    return pvm_hc_as_map_batch(h, (unsigned long)ops, count);
}
static inline long as_donate(uint64_t gpa, uint64_t len) { return pvm_hc_as_donate(gpa, len); }
static inline long as_page_fault(long h, uint64_t va, uint64_t err, uint64_t rip)
{
    return pvm_hc_page_fault(h, va, err, rip);
}

#endif
