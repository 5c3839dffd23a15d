/* The native shim: supervisor/shim.py's common path in C, for a start that costs an exec of a small
 * program instead of a Python interpreter, and a shim that holds a few hundred KB while its worker runs.
 *
 * It keeps every promise of the Python shim: the worker in a session of its own, its output on files
 * the shim opened (no pipe a dead supervisor could break), `launch.json` before the supervisor hears
 * of the start, this shim as the subreaper of whatever the worker leaves behind, no parent-death
 * signal (it outlives the supervisor), `exit.json` durable before the shim exits, SIGTERM passed to
 * the worker's group. The records have the Python shim's fields and meaning.
 *
 * Whatever is not the common path it hands to the Python shim by exec, which keeps this process, its
 * pid, its children and its subreaper role:
 *   - before the worker runs (a second start in this folder, a record or output file that cannot be
 *     written, a worker that cannot be executed): the Python shim, given the same options, does the
 *     whole start again and says why it failed in its own words;
 *   - after the worker ended, when its task folder holds `process.json` (children it registered to
 *     outlive it): `--after-exit` keeps those children and writes the record;
 *   - when `exit.json` cannot be written (no reserve, and a full disk): `--write-exit` writes it, or
 *     carries the exit in the shim's exit status.
 *
 *   aura-shim --python PY --script SHIM.py --dir D --cwd C --stdout F --stderr F [--task-dir T]
 *             [--status-fd N] [--grace S] -- ARGV...
 *
 * Built on first use by supervisor/nativeshim.py; Linux only (/proc, prctl).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RESERVE_BYTES 8192 /* supervisor/exitrecord.py RESERVE_BYTES */
#define RECORD_MAX 4096

struct options {
    const char *python, *script, *dir, *cwd, *out, *err, *task_dir;
    int status_fd;
    double grace;
    char **argv;       /* the worker's command */
    char **python_args; /* everything after --script, as the Python shim takes it */
};

static volatile sig_atomic_t stop_requested = 0;
static volatile pid_t worker_pid = 0;

static void on_term(int sig) {
    stop_requested = 1;
    if (worker_pid > 0) kill(-worker_pid, sig);
}

static double now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void pause_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int join(char *buf, size_t size, const char *a, const char *b) {
    int n = snprintf(buf, size, "%s/%s", a, b);
    return n > 0 && (size_t)n < size;
}

/* -- the Python shim, for what this one does not do ---------------------------------------------- */

static void exec_python(const struct options *o, const char *mode, char **mode_args, int n_mode) {
    size_t n = 0;
    while (o->python_args[n]) n++;
    char **argv = calloc(n + (size_t)n_mode + 6, sizeof(char *));
    if (argv) {
        size_t i = 0;
        argv[i++] = (char *)o->python;
        argv[i++] = "-I";
        argv[i++] = "-S";
        argv[i++] = (char *)o->script;
        if (mode) argv[i++] = (char *)mode;
        for (int k = 0; k < n_mode; k++) argv[i++] = mode_args[k];
        for (size_t k = 0; k < n; k++) argv[i++] = o->python_args[k];
        argv[i] = NULL;
        execv(o->python, argv);
    }
}

/* Before the worker runs: the Python shim starts it, or says why it cannot. */
static int hand_over_start(const struct options *o, const char *why) {
    exec_python(o, NULL, NULL, 0);
    if (o->status_fd >= 0) {
        char msg[512];
        int n = snprintf(msg, sizeof msg,
                         "{\"ok\": false, \"error\": \"could not start the worker: %s; the Python shim could not be started either\"}\n",
                         why);
        if (n > 0 && write(o->status_fd, msg, (size_t)n) < 0) {
        }
    }
    return 127;
}

/* -- records ---------------------------------------------------------------------------------------- */

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void fsync_path(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Write `name` in the worker folder by a rename over it; 0 or -1. With `sync`, the file and then its
 * folder are fsynced after the rename: a journaling file system commits both in the file's fsync,
 * where an fsync before the rename would wait for a second commit. A crash before that fsync can
 * leave the name on an empty file, which every reader takes for no record, as it would the tmp. */
static int atomic_write(const char *dir, const char *name, const char *data, int sync) {
    char path[PATH_MAX], tmp[PATH_MAX];
    char tmpname[NAME_MAX];
    snprintf(tmpname, sizeof tmpname, ".%s.%d.n.tmp", name, (int)getpid());
    if (!join(path, sizeof path, dir, name) || !join(tmp, sizeof tmp, dir, tmpname)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    if (write_all(fd, data, strlen(data)) != 0 || rename(tmp, path) != 0) {
        int saved = errno;
        close(fd);
        unlink(tmp);
        errno = saved;
        return -1;
    }
    int bad = sync && fsync(fd) != 0;
    int saved = errno;
    close(fd);
    if (bad) {
        errno = saved;
        return -1;
    }
    if (sync) fsync_path(dir);
    return 0;
}

/* The exit record into the blocks `exit.reserve` was given at the start, padded with spaces to its
 * size, then the reserve renamed to `exit.json`; 0 or -1 (no reserve, or the record does not fit).
 * Neither the size nor the blocks change, so fdatasync is a data write and a cache flush, with no
 * journal commit to wait for: a burst of exits does not queue behind the file system's commits. The
 * rename reaches the disk at the next commit; a crash before it leaves the whole record in the
 * reserve, which every reader of exit records takes in (aura/runtime/exitfile.py). */
static int write_in_reserve(const char *dir, const char *record) {
    char spare[PATH_MAX], path[PATH_MAX], padded[RESERVE_BYTES];
    size_t len = strlen(record);
    if (len > sizeof padded || !join(spare, sizeof spare, dir, "exit.reserve") || !join(path, sizeof path, dir, "exit.json"))
        return -1;
    int fd = open(spare, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    memset(padded, ' ', sizeof padded);
    memcpy(padded, record, len);
    struct stat st;
    int bad = fstat(fd, &st) != 0 || st.st_size != (off_t)sizeof padded ||
              pwrite(fd, padded, sizeof padded, 0) != (ssize_t)sizeof padded || fdatasync(fd) != 0;
    close(fd);
    return bad ? -1 : rename(spare, path);
}

static int reserve_exit_space(const char *dir) {
    char path[PATH_MAX];
    if (!join(path, sizeof path, dir, "exit.reserve")) return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600); /* it becomes exit.json: private, as every record */
    if (fd < 0) return -1;
    char spaces[RESERVE_BYTES];
    memset(spaces, ' ', sizeof spaces);
    if (write_all(fd, spaces, sizeof spaces) != 0) {
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

static int open_output(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & 077)) fchmod(fd, 0600);
    return fd;
}

/* A JSON string of `s` (the node's name: plain in practice, escaped all the same). */
static void json_string(char *buf, size_t size, const char *s) {
    size_t i = 0;
    if (size < 3) return;
    buf[i++] = '"';
    for (; *s && i + 8 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[i++] = '\\';
            buf[i++] = (char)c;
        } else if (c < 0x20) {
            i += (size_t)snprintf(buf + i, size - i, "\\u%04x", c);
        } else {
            buf[i++] = (char)c;
        }
    }
    buf[i++] = '"';
    buf[i] = '\0';
}

/* -- processes ---------------------------------------------------------------------------------------- */

static double boot_time = -1;

/* The process's start time as aura/runtime/pidfile.py computes it (boot time + start ticks), or -1. */
static double start_time(pid_t pid) {
    char path[64], buf[1024];
    if (boot_time < 0) {
        FILE *f = fopen("/proc/stat", "re");
        if (!f) return -1;
        char line[256];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "btime ", 6) == 0) {
                boot_time = (double)strtoll(line + 6, NULL, 10);
                break;
            }
        }
        fclose(f);
        if (boot_time < 0) return -1;
    }
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p += 2; /* the state letter is field 0 after ") " */
    for (int field = 0; field < 19 && p; field++) {
        p = strchr(p, ' ');
        if (p) p++;
    }
    if (!p) return -1;
    long long ticks = strtoll(p, NULL, 10);
    return (double)ticks / (double)sysconf(_SC_CLK_TCK) + boot_time;
}

static void reap_all(void) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

/* Every process under this shim (the worker's tree and the orphans it adopted as subreaper), each
 * sent `sig`; how many. */
static int signal_descendants(int sig) {
    pid_t todo[4096];
    int n = 0, done = 0, hit = 0;
    todo[n++] = getpid();
    while (done < n) {
        pid_t pid = todo[done++];
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
        DIR *d = opendir(path);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char kids_path[320], kids[4096];
            snprintf(kids_path, sizeof kids_path, "/proc/%d/task/%s/children", (int)pid, e->d_name);
            int fd = open(kids_path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            ssize_t len = read(fd, kids, sizeof kids - 1);
            close(fd);
            if (len <= 0) continue;
            kids[len] = '\0';
            for (char *s = kids; *s;) {
                char *end;
                long kid = strtol(s, &end, 10);
                if (end == s) break;
                s = end;
                if (kid > 0 && n < (int)(sizeof todo / sizeof todo[0])) todo[n++] = (pid_t)kid;
            }
        }
        closedir(d);
    }
    for (int i = 1; i < n; i++) {
        if (kill(todo[i], sig) == 0) hit++;
    }
    return hit;
}

/* What the worker left behind: its group (TERM, KILL after `grace`), then every other descendant. */
static int stop_leftovers(pid_t pgid, double grace) {
    int left = 0;
    if (kill(-pgid, 0) == 0) {
        left++;
        kill(-pgid, SIGTERM);
        double deadline = now() + grace;
        while (now() < deadline && kill(-pgid, 0) == 0) {
            reap_all();
            pause_ms(50);
        }
        if (kill(-pgid, 0) == 0) kill(-pgid, SIGKILL);
    }
    left += signal_descendants(SIGKILL);
    reap_all();
    return left;
}

static int wait_for(pid_t pid) {
    int status;
    for (;;) {
        pid_t got = waitpid(-1, &status, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        if (got == pid) return status;
    }
}

static void close_from(int low, int keep) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    int own = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd >= low && fd != keep && fd != own) close(fd);
    }
    closedir(d);
}

/* In the forked child: become the worker. Its exec error goes back on `report` (close-on-exec). */
static void become_worker(const struct options *o, int out, int err, int report) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    int reset[] = {SIGINT, SIGHUP, SIGPIPE, SIGTERM, SIGXFSZ, SIGCHLD};
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++) sigaction(reset[i], &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    int e = 0;
    int null = open("/dev/null", O_RDONLY);
    if (chdir(o->cwd) != 0 || null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
        e = errno;
    } else {
        close_from(3, report);
        execvp(o->argv[0], o->argv);
        e = errno;
    }
    if (write(report, &e, sizeof e) < 0) {
    }
    _exit(127);
}

/* -- the record of the end ------------------------------------------------------------------------- */

static void exit_fields(int status, char *buf, size_t size) {
    if (WIFSIGNALED(status))
        snprintf(buf, size, "\"exit_code\": null, \"signal\": %d", WTERMSIG(status));
    else
        snprintf(buf, size, "\"exit_code\": %d, \"signal\": null", WEXITSTATUS(status));
}

static int finish(const struct options *o, int status, double started) {
    char fields[128], record[RECORD_MAX];
    int leftovers = stop_leftovers(worker_pid, o->grace);
    double finished = now();
    exit_fields(status, fields, sizeof fields);
    snprintf(record, sizeof record,
             "{%s, \"started_at\": %.17g, \"ended_at\": %.17g, \"duration_s\": %.3f, \"leftovers_stopped\": %d}\n",
             fields, started, finished, finished - started, leftovers);
    if (write_in_reserve(o->dir, record) == 0) return 0;
    if (atomic_write(o->dir, "exit.json", record, 1) == 0) {
        char spare[PATH_MAX];
        if (join(spare, sizeof spare, o->dir, "exit.reserve")) unlink(spare);
        return 0;
    }
    char *mode_args[] = {record};
    exec_python(o, "--write-exit", mode_args, 1); /* no reserve and a full disk: the Python shim's last tries */
    if (WIFSIGNALED(status)) return 160 + (WTERMSIG(status) < 64 ? WTERMSIG(status) : 64);
    return WEXITSTATUS(status) <= 61 ? 64 + WEXITSTATUS(status) : 126; /* supervisor/exitrecord.py encode */
}

/* -- the start ------------------------------------------------------------------------------------- */

static int parse(int argc, char **argv, struct options *o) {
    memset(o, 0, sizeof *o);
    o->status_fd = -1;
    o->grace = 3.0;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            o->argv = argv + i + 1;
            break;
        }
        if (i + 1 >= argc) return -1;
        const char *v = argv[++i];
        if (strcmp(a, "--python") == 0) o->python = v;
        else if (strcmp(a, "--script") == 0) {
            o->script = v;
            o->python_args = argv + i + 1;
        } else if (strcmp(a, "--dir") == 0) o->dir = v;
        else if (strcmp(a, "--cwd") == 0) o->cwd = v;
        else if (strcmp(a, "--stdout") == 0) o->out = v;
        else if (strcmp(a, "--stderr") == 0) o->err = v;
        else if (strcmp(a, "--task-dir") == 0) o->task_dir = v;
        else if (strcmp(a, "--status-fd") == 0) o->status_fd = atoi(v);
        else if (strcmp(a, "--grace") == 0) o->grace = atof(v);
        else return -1;
    }
    if (!o->python || !o->script || !o->dir || !o->cwd || !o->out || !o->err || !o->argv || !o->argv[0]) return -1;
    return 0;
}

static int started_before(const char *dir) {
    char path[PATH_MAX];
    return join(path, sizeof path, dir, "launch.json") && access(path, F_OK) == 0;
}

static int has_registered(const char *task_dir) {
    char path[PATH_MAX];
    return task_dir && *task_dir && join(path, sizeof path, task_dir, "process.json") && access(path, F_OK) == 0;
}

int main(int argc, char **argv) {
    struct options o;
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr, "aura-shim: usage: aura-shim --python PY --script SHIM --dir D --cwd C --stdout F --stderr F -- ARGV...\n");
        return 2;
    }
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction term;
    memset(&term, 0, sizeof term);
    term.sa_handler = on_term;
    sigaction(SIGTERM, &term, NULL);
    int subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0;
    prctl(PR_SET_NAME, "aura-shim", 0, 0, 0); /* a worker's `pkill python` must not take its exit record with it */
    double started = now();
    if (started_before(o.dir)) return hand_over_start(&o, "started before");
    if (reserve_exit_space(o.dir) != 0) return hand_over_start(&o, "no room for its exit record");
    int out = open_output(o.out), err = out < 0 ? -1 : open_output(o.err);
    if (out < 0 || err < 0) return hand_over_start(&o, "its output files cannot be opened");
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return hand_over_start(&o, "no pipe");
    pid_t pid = fork();
    if (pid < 0) return hand_over_start(&o, "fork failed");
    if (pid == 0) {
        if (o.status_fd >= 0) close(o.status_fd);
        become_worker(&o, out, err, report[1]);
    }
    worker_pid = pid;
    close(report[1]);
    close(out);
    close(err);
    int exec_errno = 0;
    ssize_t got;
    do {
        got = read(report[0], &exec_errno, sizeof exec_errno);
    } while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == (ssize_t)sizeof exec_errno) { /* not started: the Python shim says why, in its words */
        worker_pid = 0;
        wait_for(pid);
        return hand_over_start(&o, strerror(exec_errno));
    }
    if (stop_requested) kill(-pid, SIGTERM);
    struct utsname uts;
    char host[3 * sizeof uts.nodename], fact[1024];
    json_string(host, sizeof host, uname(&uts) == 0 ? uts.nodename : "");
    double wct = start_time(pid), sct = start_time(getpid());
    char wct_s[32], sct_s[32];
    snprintf(wct_s, sizeof wct_s, wct < 0 ? "null" : "%.17g", wct);
    snprintf(sct_s, sizeof sct_s, sct < 0 ? "null" : "%.17g", sct);
    snprintf(fact, sizeof fact,
             "\"worker_pid\": %d, \"worker_create_time\": %s, \"pgid\": %d, \"shim_pid\": %d, \"shim_create_time\": %s, "
             "\"started_at\": %.17g, \"subreaper\": %s, \"host\": %s, \"native\": true",
             (int)pid, wct_s, (int)pid, (int)getpid(), sct_s, started, subreaper ? "true" : "false", host);
    char launch[1200], told[1200];
    snprintf(launch, sizeof launch, "{%s}\n", fact);
    if (atomic_write(o.dir, "launch.json", launch, 0) != 0) { /* a worker nobody could re-adopt must not run */
        int saved = errno;
        kill(-pid, SIGKILL);
        wait_for(pid);
        worker_pid = 0;
        stop_leftovers(pid, 0.0);
        char code[16];
        snprintf(code, sizeof code, "%d", saved);
        char *mode_args[] = {code};
        exec_python(&o, "--launch-errno", mode_args, 1); /* records why and tells the supervisor */
        return 127;
    }
    if (o.status_fd >= 0) {
        snprintf(told, sizeof told, "{\"ok\": true, %s}\n", fact);
        if (write_all(o.status_fd, told, strlen(told)) != 0) {
        }
        close(o.status_fd);
    }
    char durable[PATH_MAX]; /* the reserve's blocks too, so the exit record is a data-only write */
    if (join(durable, sizeof durable, o.dir, "exit.reserve")) fsync_path(durable);
    if (join(durable, sizeof durable, o.dir, "launch.json")) fsync_path(durable);
    fsync_path(o.dir);
    int status = wait_for(pid);
    double ended = now();
    if (!stop_requested && has_registered(o.task_dir)) {
        char st[32], st_started[32], st_ended[32], wp[32];
        snprintf(wp, sizeof wp, "%d", (int)pid);
        snprintf(st, sizeof st, "%d", status);
        snprintf(st_started, sizeof st_started, "%.17g", started);
        snprintf(st_ended, sizeof st_ended, "%.17g", ended);
        char *mode_args[] = {"--worker-pid", wp, "--wait-status", st, "--started-at", st_started, "--ended-at", st_ended};
        sigset_t term_only, before;
        sigemptyset(&term_only);
        sigaddset(&term_only, SIGTERM);
        sigprocmask(SIG_BLOCK, &term_only, &before); /* a kill during the exec waits for the Python shim */
        exec_python(&o, "--after-exit", mode_args, 8); /* keeps the children the worker registered */
        sigprocmask(SIG_SETMASK, &before, NULL);
    }
    return finish(&o, status, started);
}
