/* Exec patterns that Python cannot produce, driven by the integration tests.
 *   exec_cases literal            fork; the child execs with string literals only
 *   exec_cases literal-missing    the same, for a path that does not exist
 *   exec_cases thread             a non-leader thread calls execve
 *   exec_cases empty-argv         execve with argv = { NULL }
 *   exec_cases hidden-argv        execve with argv's pointer array across a page that is
 *                                 mapped but not present: a tracer's read at entry sees
 *                                 the array end early, the kernel copies all of it
 *   exec_cases storm N [WORKERS [ARGV_BYTES]]  WORKERS processes each fork+exec /bin/true
 *                                 N/WORKERS times, with arguments of about ARGV_BYTES in all
 *   exec_cases unreadable-argv    fork; the child fails to exec a missing program, its
 *                                 arguments in a file mapping it never touched: their
 *                                 page is not present, and the kernel opens the path
 *                                 (and fails) before it would copy them
 *   exec_cases exec-race N        N times: a child whose two threads exec at once; the
 *                                 kernel kills the one that loses inside its execve
 *   exec_cases execveat PATH FD NAME FLAGS ARG...
 *                                 fork; the child opens PATH as fd FD (nothing when FD is
 *                                 AT_FDCWD, -100) and calls execveat(FD, NAME, {ARG...},
 *                                 environ, FLAGS): relative to a directory's fd, or an
 *                                 fexecve (NAME "", FLAGS AT_EMPTY_PATH); 1 if PATH
 *                                 cannot be opened, else 0 whatever the exec returned
 */
#define _GNU_SOURCE /* memfd_create */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int wait_child(pid_t pid) {
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int literal(const char *path) {
    pid_t pid = fork();
    if (pid == 0) {
        /* Nothing here touches these strings before the kernel does. */
        execl(path, "literal-argv0", "first literal", "second\tliteral", (char *)NULL);
        _exit(127);
    }
    return wait_child(pid) == 127 ? 0 : 0;
}

static void *exec_from_thread(void *unused) {
    (void)unused;
    char *argv[] = {"/bin/echo", "from-thread", NULL};
    execve("/bin/echo", argv, environ);
    return NULL;
}

static int thread_exec(void) {
    pthread_t t;
    pthread_create(&t, NULL, exec_from_thread, NULL);
    pthread_join(t, NULL);
    return 1; /* not reached when the exec succeeds */
}

static int empty_argv(void) {
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {NULL};
        execve("/bin/true", argv, environ);
        _exit(127);
    }
    return wait_child(pid);
}

static int hidden_argv(void) {
    pid_t pid = fork();
    if (pid == 0) {
        /* Set up in the child: a fork does not copy the page tables of a shared mapping. */
        long page = sysconf(_SC_PAGESIZE);
        int fd = memfd_create("hidden-argv", 0);
        if (fd < 0 || ftruncate(fd, 2 * page) < 0) _exit(126);
        char *area = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (area == MAP_FAILED) _exit(126);
        const char *words[] = {"/bin/sh", "-c", ": HIDDEN", "sh", "case-hidden-argv"};
        char *ptrs[6];
        char *s = area; /* the strings: on the first page, written to, so present */
        for (int i = 0; i < 5; i++) {
            strcpy(s, words[i]);
            ptrs[i] = s;
            s += strlen(words[i]) + 1;
        }
        ptrs[5] = NULL;
        /* Two pointers at the end of the first page; the rest written to the file behind
           the second page, which this process never touches. */
        char **argv = (char **)(area + page - 2 * sizeof(char *));
        argv[0] = ptrs[0];
        argv[1] = ptrs[1];
        if (pwrite(fd, ptrs + 2, 4 * sizeof(char *), page) < 0) _exit(126);
        execve("/bin/sh", argv, environ);
        _exit(127);
    }
    return wait_child(pid);
}

static int unreadable_argv(void) {
    long page = sysconf(_SC_PAGESIZE);
    int fd = memfd_create("argv", 0);
    if (fd < 0 || pwrite(fd, "unseen-1\0unseen-2", 18, 0) != 18 || ftruncate(fd, page) < 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        char *strings = mmap(NULL, page, PROT_READ, MAP_PRIVATE, fd, 0);
        if (strings == MAP_FAILED) _exit(126);
        char *argv[] = {strings, strings + 9, NULL};
        execve("/nonexistent/bpx-unreadable", argv, environ);
        _exit(0);
    }
    return wait_child(pid);
}

static void *race_thread(void *unused) {
    (void)unused;
    char *argv[] = {"/bin/true", "race-thread", NULL};
    execve("/bin/true", argv, environ);
    return NULL;
}

static int exec_race(long n) {
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            pthread_t t;
            pthread_create(&t, NULL, race_thread, NULL);
            char *argv[] = {"/bin/true", "race-main", NULL};
            execve("/bin/true", argv, environ);
            _exit(127);
        }
        if (wait_child(pid) != 0) return 1;
    }
    return 0;
}

static int storm(long n, int workers, long argv_bytes) {
    /* arguments of 30 bytes with their NULs, as a compiler's command line has them */
    static char args[1024][30];
    static char *argv[1026] = {"/bin/true"};
    for (long i = 0; i < 1024 && 10 + 30 * i < argv_bytes; i++) {
        snprintf(args[i], sizeof(args[i]), "arg%04ld-xxxxxxxxxxxxxxxxxxxxx", i);
        argv[i + 1] = args[i];
    }
    for (int w = 0; w < workers; w++) {
        if (fork() == 0) {
            for (long i = 0; i < n / workers; i++) {
                pid_t pid = fork();
                if (pid == 0) { execve("/bin/true", argv, environ); _exit(127); }
                if (pid < 0 || wait_child(pid) != 0) _exit(1);
            }
            _exit(0);
        }
    }
    int failed = 0;
    for (int w = 0; w < workers; w++) {
        int status = 0;
        wait(&status);
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    return failed;
}

static int exec_at(const char *path, int fd, const char *name, int flags, char **args) {
    pid_t pid = fork();
    if (pid == 0) {
        if (fd != AT_FDCWD) {
            int opened = open(path, O_RDONLY);
            if (opened < 0 || dup2(opened, fd) < 0) _exit(126);
        }
        /* the raw syscall: what a libc makes of execveat or fexecve is not under test */
        syscall(SYS_execveat, fd, name, args, environ, flags);
        _exit(127);
    }
    return wait_child(pid) == 126;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: see the comment at the top\n"); return 2; }
    if (!strcmp(argv[1], "literal")) return literal("/bin/echo");
    if (!strcmp(argv[1], "literal-missing")) return literal("/nonexistent/literal-prog");
    if (!strcmp(argv[1], "thread")) return thread_exec();
    if (!strcmp(argv[1], "empty-argv")) return empty_argv();
    if (!strcmp(argv[1], "hidden-argv")) return hidden_argv();
    if (!strcmp(argv[1], "unreadable-argv")) return unreadable_argv();
    if (!strcmp(argv[1], "exec-race") && argc >= 3) return exec_race(atol(argv[2]));
    if (!strcmp(argv[1], "storm") && argc >= 3)
        return storm(atol(argv[2]), argc >= 4 ? atoi(argv[3]) : 1,
                     argc >= 5 ? atol(argv[4]) : 0);
    if (!strcmp(argv[1], "execveat") && argc >= 7)
        return exec_at(argv[2], atoi(argv[3]), argv[4], atoi(argv[5]), argv + 6);
    fprintf(stderr, "unknown case %s\n", argv[1]);
    return 2;
}
