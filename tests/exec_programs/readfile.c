/* FNV-1a 64 of a file read with read(2) in odd-sized pieces, and its size from fstat. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    struct stat st;
    fstat(fd, &st);
    static unsigned char buf[70001];
    unsigned long long h = 0xcbf29ce484222325ULL, n = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < r; i++)
            h = (h ^ buf[i]) * 0x100000001b3ULL;
        n += (unsigned long long)r;
    }
    printf("size=%lld read=%llu fnv=%016llx\n", (long long)st.st_size, n, h);
    return r < 0;
}
