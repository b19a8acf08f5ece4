/* malloc/free stress: brk and mmap regions, each block checked after the others were made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    enum { N = 400 };
    static unsigned char *p[N];
    static size_t sz[N];
    unsigned seed = 12345;
    unsigned long total = 0;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N; i++) {
            seed = seed * 1103515245 + 12345;
            sz[i] = (seed >> 8) % (i % 10 == 0 ? 300000 : 3000) + 1;
            p[i] = malloc(sz[i]);
            if (!p[i]) {
                printf("malloc failed\n");
                return 1;
            }
            memset(p[i], i & 0xff, sz[i]);
            total += sz[i];
        }
        for (int i = 0; i < N; i++) {
            for (size_t j = 0; j < sz[i]; j += 97)
                if (p[i][j] != (unsigned char)(i & 0xff)) {
                    printf("corrupt block %d\n", i);
                    return 1;
                }
            free(p[i]);
        }
    }
    printf("malloc ok: %lu bytes\n", total);
    return 0;
}
