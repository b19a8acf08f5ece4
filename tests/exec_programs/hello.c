/* write(2) and writev(2) to stdout, a line to stderr, and an exit code from argv[1]. */
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    write(1, "hello from musl\n", 16);
    struct iovec v[2] = {{"via ", 4}, {"writev\n", 7}};
    writev(1, v, 2);
    write(2, "to stderr\n", 10);
    return argc > 1 ? atoi(argv[1]) : 0;
}
