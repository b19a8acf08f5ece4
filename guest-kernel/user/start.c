/* The user entry point, first in the user text (so it sits at USER_TEXT):
 * rdi = program, rsi = argument, rdx = task id. */
#include "ulib.h"

long user_main(long prog, long arg, long id);

__attribute__((section(".text.entry"), used, noreturn)) void _ustart(long prog, long arg, long id)
{
    uexit(user_main(prog, arg, id));
}
