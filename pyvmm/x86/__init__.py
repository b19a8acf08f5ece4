"""x86-64 architecture pieces: page tables, boot-time CPU state, CPUID."""
