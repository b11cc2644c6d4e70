/* cref: the C reference supervisor of pmon3's benches (benches/README.md, "C reference").
 *
 *   cref [-d LOGDIR] [-t TRACE] -f CONFIG
 *   cref [-d LOGDIR] [-t TRACE] -n N PROGRAM [ARG...]
 *
 * CONFIG has one child per line, "NAME PROGRAM [ARG...]" separated by blanks (no quoting); empty lines
 * and lines starting with '#' are skipped. -n starts N copies of PROGRAM named c1..cN.
 *
 * A child is started the way pmond starts one, minus the uid switch: posix_spawn, which glibc implements
 * with clone(CLONE_VM|CLONE_VFORK) (clone3 first) like pmon3's rust/spawn.rs, so it returns once the
 * child has exec'd; a new session, default signal dispositions and an empty mask, cwd = the program's
 * directory, stdin /dev/null, stdout and stderr appended to LOGDIR/NAME.log (O_WRONLY|O_APPEND|O_CREAT,
 * 0640), every other fd closed, a clean environment (PATH HOME USER LOGNAME SHELL [LANG]), argv[0] = NAME.
 * Each child's pidfd (pidfd_open) sits in one epoll set; when it fires the child is reaped with
 * waitid(P_PIDFD) and started again at once (no back-off: a program that cannot start stays down).
 * SIGTERM or SIGINT (signalfd): SIGTERM to every child's process group, wait for them all (10 s, then
 * SIGKILL), exit 0.
 * -t TRACE appends "<CLOCK_MONOTONIC ns> <event> <pid>" lines, event = seen (a pidfd fired), spawn (just
 * before posix_spawn; pid 0) or spawned (it returned): the format proposed for pmond's PMON3_TRACE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define SIGNAL_KEY UINT32_MAX
#define STOP_TIMEOUT_NS 10000000000LL

struct child {
    char *name, *file, *log, *cwd;
    char **argv; /* argv[0] is the name, as pmond does it */
    posix_spawn_file_actions_t actions;
    pid_t pid;
    int pidfd; /* -1: not running */
};

static struct child *kids;
static int nkids, running, tracefd = -1;
static posix_spawnattr_t attr;
static char *envp[7];

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void trace(const char *event, long pid) {
    if (tracefd < 0) return;
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%lld %s %ld\n", now_ns(), event, pid);
    if (write(tracefd, buf, (size_t)n) != n) tracefd = -1;
}

static void die(const char *what) {
    fprintf(stderr, "cref: %s: %s\n", what, strerror(errno));
    exit(1);
}

static char *format(const char *fmt, const char *a, const char *b) {
    char *s;
    if (asprintf(&s, fmt, a, b) < 0) die("asprintf");
    return s;
}

static char *xstrdup(const char *s) {
    char *d = strdup(s);
    if (!d) die("strdup");
    return d;
}

/* A child from NAME, PROGRAM and its arguments (argv points at ARGS, nargs of them). */
static void add_child(const char *name, const char *file, char **args, int nargs, const char *logdir) {
    if (nkids % 64 == 0 && !(kids = realloc(kids, sizeof *kids * (size_t)(nkids + 64)))) die("realloc");
    struct child *c = &kids[nkids++];
    c->name = xstrdup(name);
    c->file = xstrdup(file);
    c->log = format("%s/%s.log", logdir, name);
    c->cwd = xstrdup(file);
    char *slash = strrchr(c->cwd, '/');
    if (slash && slash != c->cwd) *slash = '\0';
    else strcpy(c->cwd, "/");
    if (!(c->argv = calloc((size_t)nargs + 2, sizeof *c->argv))) die("calloc");
    c->argv[0] = c->name;
    for (int i = 0; i < nargs; i++) c->argv[i + 1] = xstrdup(args[i]);
    c->pidfd = -1;
    posix_spawn_file_actions_t *fa = &c->actions;
    if (posix_spawn_file_actions_init(fa) || posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0) ||
        posix_spawn_file_actions_addopen(fa, 1, c->log, O_WRONLY | O_APPEND | O_CREAT, 0640) ||
        posix_spawn_file_actions_adddup2(fa, 1, 2) || posix_spawn_file_actions_addchdir_np(fa, c->cwd) ||
        posix_spawn_file_actions_addclosefrom_np(fa, 3))
        die("posix_spawn_file_actions");
}

static void load_config(const char *path, const char *logdir) {
    FILE *f = fopen(path, "r");
    if (!f) die(path);
    char *line = NULL, *words[256];
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        int n = 0;
        for (char *w = strtok(line, " \t\r\n"); w && n < 256; w = strtok(NULL, " \t\r\n")) words[n++] = w;
        if (n == 0 || words[0][0] == '#') continue;
        if (n < 2) {
            fprintf(stderr, "cref: %s: a line needs NAME PROGRAM\n", path);
            exit(2);
        }
        add_child(words[0], words[1], words + 2, n - 2, logdir);
    }
    free(line);
    fclose(f);
}

static void setup_spawn(void) {
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (posix_spawnattr_init(&attr) ||
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) ||
        posix_spawnattr_setsigmask(&attr, &none) || posix_spawnattr_setsigdefault(&attr, &all))
        die("posix_spawnattr");
    struct passwd *pw = getpwuid(geteuid());
    int n = 0;
    envp[n++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"; /* pmond's BASE_PATH */
    envp[n++] = format("%s=%s", "HOME", pw ? pw->pw_dir : "/");
    envp[n++] = format("%s=%s", "USER", pw ? pw->pw_name : "");
    envp[n++] = format("%s=%s", "LOGNAME", pw ? pw->pw_name : "");
    envp[n++] = format("%s=%s", "SHELL", pw && pw->pw_shell[0] ? pw->pw_shell : "/bin/sh");
    if (getenv("LANG")) envp[n++] = format("%s=%s", "LANG", getenv("LANG"));
    envp[n] = NULL;
}

static void spawn_child(int i, int epfd) {
    struct child *c = &kids[i];
    trace("spawn", 0);
    int err = posix_spawn(&c->pid, c->file, &c->actions, &attr, c->argv, envp);
    if (err) {
        fprintf(stderr, "cref: spawn %s (%s): %s\n", c->name, c->file, strerror(err));
        return;
    }
    trace("spawned", c->pid);
    /* Our unreaped child: its pid cannot be reused before we wait for it, so pidfd_open is race-free. */
    c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
    if (c->pidfd < 0) die("pidfd_open");
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->pidfd, &ev) < 0) die("epoll_ctl");
    running++;
}

static void signal_all(int sig) {
    for (int i = 0; i < nkids; i++)
        if (kids[i].pidfd >= 0) kill(-kids[i].pid, sig); /* its group: the child is a session leader */
}

int main(int argc, char **argv) {
    const char *logdir = ".", *config = NULL, *tracepath = NULL;
    long copies = 0;
    int opt;
    while ((opt = getopt(argc, argv, "+d:f:n:t:")) != -1) {
        if (opt == 'd') logdir = optarg;
        else if (opt == 'f') config = optarg;
        else if (opt == 'n') copies = strtol(optarg, NULL, 10);
        else if (opt == 't') tracepath = optarg;
        else return 2;
    }
    if (config) {
        load_config(config, logdir);
    } else if (copies > 0 && optind < argc) {
        char name[32];
        for (long i = 1; i <= copies; i++) {
            snprintf(name, sizeof name, "c%ld", i);
            add_child(name, argv[optind], argv + optind + 1, argc - optind - 1, logdir);
        }
    } else {
        fprintf(stderr, "usage: cref [-d LOGDIR] [-t TRACE] (-f CONFIG | -n N PROGRAM [ARG...])\n");
        return 2;
    }
    if (tracepath && (tracefd = open(tracepath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) < 0)
        die(tracepath);
    struct rlimit rl; /* one pidfd per child */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    if (sigprocmask(SIG_BLOCK, &stop, NULL) < 0) die("sigprocmask");
    int sfd = signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (sfd < 0 || epfd < 0) die("signalfd/epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = SIGNAL_KEY};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev) < 0) die("epoll_ctl");
    setup_spawn();
    for (int i = 0; i < nkids; i++) spawn_child(i, epfd);

    int stopping = 0, killed = 0;
    long long deadline = 0;
    struct epoll_event evs[64];
    while (!stopping || running > 0) {
        int timeout = -1;
        if (stopping && !killed) {
            long long left = deadline - now_ns();
            if (left <= 0) {
                signal_all(SIGKILL);
                killed = 1;
            } else {
                timeout = (int)(left / 1000000) + 1;
            }
        }
        int n = epoll_wait(epfd, evs, 64, timeout);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int k = 0; k < n; k++) {
            if (evs[k].data.u32 == SIGNAL_KEY) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                }
                if (!stopping) {
                    stopping = 1;
                    deadline = now_ns() + STOP_TIMEOUT_NS;
                    signal_all(SIGTERM);
                }
                continue;
            }
            struct child *c = &kids[evs[k].data.u32];
            trace("seen", c->pid);
            siginfo_t info;
            while (waitid((idtype_t)P_PIDFD, (id_t)c->pidfd, &info, WEXITED) < 0)
                if (errno != EINTR) die("waitid");
            close(c->pidfd); /* also leaves the epoll set */
            c->pidfd = -1;
            running--;
            if (!stopping) spawn_child((int)evs[k].data.u32, epfd);
        }
    }
    return 0;
}
