/* Syscall storms for the benchmarks of the syscall profiles.
 *   call_storm open N PATH     N times: openat(PATH, O_RDONLY), then close
 *   call_storm connect N       N times: a TCP connect to a listener of its own on
 *                              127.0.0.1 (accepted and closed by a thread), then close
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void *accept_all(void *arg) {
    int listener = *(int *)arg;
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd >= 0) close(fd);
    }
    return NULL;
}

static int open_storm(long n, const char *path) {
    for (long i = 0; i < n; i++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) return 1;
        close(fd);
    }
    return 0;
}

static int connect_storm(long n) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, len) ||
        listen(listener, 128) || getsockname(listener, (struct sockaddr *)&addr, &len))
        return 1;
    pthread_t thread;
    if (pthread_create(&thread, NULL, accept_all, &listener)) return 1;
    for (long i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&addr, len)) return 1;
        close(fd);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "open")) return open_storm(atol(argv[2]), argv[3]);
    if (argc >= 3 && !strcmp(argv[1], "connect")) return connect_storm(atol(argv[2]));
    fprintf(stderr, "usage: call_storm open N PATH | connect N\n");
    return 2;
}
