/* A pyvmm guest: prints a greeting and the command line, and exits with code=N (default 0).
 * Build: make; run: make run (or pyvmm run hello.elf --cmdline "name=you code=3"). */
#include <pyvmm_guest.h>

int main(void)
{
    char name[64], code[8];
    if (pvm_cmdline_get("name", name, sizeof name) < 0)
        pvm_memcpy(name, "world", 6);
    pvm_print("hello, ");
    pvm_print(name);
    pvm_print(", from a pyvmm guest (ABI ");
    pvm_print_dec(pvm_boot->abi_version >> 16);
    pvm_print(".");
    pvm_print_dec(pvm_boot->abi_version & 0xffff);
    pvm_print(", ");
    pvm_print_dec((long)(pvm_boot->mem_size >> 20));
    pvm_print(" MiB)\n");
    if (pvm_cmdline_get("code", code, sizeof code) > 0)
        return code[0] - '0';
    return 0;
}
