/* The supervised child of the crash-to-restart bench: reports the moment it has exec'd. */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (argc < 2) return 2;
    int fd = open(argv[1], O_WRONLY);
    if (fd < 0) return 3;
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%lld %d\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, (int)getpid());
    if (write(fd, buf, (size_t)n) != n) return 4;
    close(fd);
    for (;;) pause();
}
