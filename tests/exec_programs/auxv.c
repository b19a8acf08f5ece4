/* argv, the environment and the auxiliary vector, as the program sees them. */
#include <elf.h>
#include <stdio.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e; e++)
        printf("env %s\n", *e);
    unsigned char *r = (unsigned char *)getauxval(AT_RANDOM);
    int nonzero = 0;
    for (int i = 0; i < 16; i++)
        nonzero |= r[i];
    printf("AT_PAGESZ=%lu AT_PHENT=%lu AT_PHNUM=%lu AT_ENTRY=%#lx AT_PHDR=%#lx\n", getauxval(AT_PAGESZ),
           getauxval(AT_PHENT), getauxval(AT_PHNUM), getauxval(AT_ENTRY), getauxval(AT_PHDR));
    printf("AT_UID=%lu AT_GID=%lu AT_SECURE=%lu AT_CLKTCK=%lu AT_RANDOM nonzero=%d AT_EXECFN=%s\n",
           getauxval(AT_UID), getauxval(AT_GID), getauxval(AT_SECURE), getauxval(AT_CLKTCK), nonzero != 0,
           (char *)getauxval(AT_EXECFN));
    char cwd[256];
    printf("cwd=%s pid=%d\n", getcwd(cwd, sizeof cwd), getpid());
    /* SSE in user code: the compiler uses it for doubles */
    volatile double x = 1.5;
    printf("sse=%.3f\n", x * x * 3.0);
    return 0;
}
