"""The paravirtual ABI (numbers, errnos, structures) and the hypercall dispatcher."""
