/* Guest test programs, selected with `test=NAME` on the command line. */
#ifndef PROGRAMS_H
#define PROGRAMS_H

struct program {
    const char *name;
    int (*main)(void); /* returns the exit code */
};

/* Each programs/NAME.c defines one `const struct program prog_NAME`. */
#define PROGRAM(n) const struct program prog_##n __attribute__((section(".rodata.programs"), used)) = {#n, n##_main}

#endif
