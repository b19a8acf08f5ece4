/* opendir/readdir of a directory, with each entry's type. */
#include <dirent.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    DIR *d = opendir(argc > 1 ? argv[1] : ".");
    if (!d) {
        perror("opendir");
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)))
        printf("%s %d\n", e->d_name, e->d_type);
    closedir(d);
    return 0;
}
