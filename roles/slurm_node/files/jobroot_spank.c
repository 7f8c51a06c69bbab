/*
 * jobroot_spank.c - SPANK plugin that runs each task of a Slurm job inside
 * the job root that the hpc.jobroot Prolog prepared for it.
 *
 * Submission side (srun: local context, sbatch/salloc: allocator context):
 *   --jobroot-image=NAME, or else the submitter's JOBROOT_IMAGE variable (CHOS
 *   style), is checked against the image-name syntax of docs/design.md and
 *   handed to the Prolog as SPANK_JOBROOT_IMAGE (spank_job_control_setenv adds
 *   the SPANK_ prefix).  No name means the node's default image.
 *   --jobroot-encrypt asks for an encrypted job volume (issue 17): handed to
 *   the Prolog as SPANK_JOBROOT_ENCRYPT=1.  The node decides: it encrypts
 *   every job (node config encrypt), allows the request (encrypt_on_request),
 *   or refuses the job with a reason.
 *
 * Node side (slurmstepd, remote context), in task_init_privileged, i.e. in
 * the forked, single-threaded task child, still root, before it becomes the
 * user:
 *   <run_dir>/jobs/<job id>.refused  -> fail the task, showing the reason;
 *   <run_dir>/jobs/<job id>.root     -> check the record, enter the host
 *                                       mount namespace, chroot, chdir back.
 *
 * Why setns() before chroot: with a job container (job_container/tmpfs,
 * PrologFlags=Contain) the job's tasks run in a private mount namespace,
 * copied from the host's at a time Slurm chooses; a chroot there would
 * depend on that ordering, and mounts the Epilogue removes on the host would
 * stay pinned in the job namespace for as long as a process of the job lives
 * in it.  So the task (single-threaded here, still root) setns()es into the
 * mount namespace the Prolog mounted in -- slurmd's, as the Prolog is
 * slurmd's child -- checks the root is a mount point there, and chroots.
 * The job root brings its own /tmp, /var/tmp and /dev/shm on the job's
 * volume, so leaving the job container's namespace loses nothing,
 * /proc/self/mountinfo in the job lists exactly the root's mounts, and the
 * Epilogue's unmounts are complete.
 *
 * Finding slurmd: its pid file when slurmd_pidfile= names one that exists
 * and holds a live slurmd; otherwise (slurmd started with --systemd writes
 * no pid file, as Debian trixie's unit does with Slurm 24.11; or slurmd was
 * restarted and the file is stale) the root-owned processes named slurmd
 * whose parent is not a slurmd (the daemon, not its forked helpers).  They
 * must all be in one mount namespace; anything else fails the task with a
 * message naming slurmd_pidfile=.
 *
 * plugstack.conf arguments (all optional):
 *   run_dir=/run/hpc-jobroot  root_base=/var/lib/hpc-jobroot/roots
 *   require=0|1   (1: a task of a job without a root record fails)
 *   slurmd_pidfile=/run/slurmd.pid  (where to look for slurmd first)
 *   mnt_ns=PATH   (enter this namespace instead of slurmd's; "none" chroots
 *                  in the task's own namespace, see below)
 *
 * mnt_ns=none, for namespace/linux (Slurm >= 25.11): with clone_ns_flags
 * CLONE_NEWPID slurmstepd is already in the job's PID and mount namespaces
 * when this runs, so slurmd's namespace cannot be found (measured on
 * 26.05.5: /proc shows only the job's processes).  The task then chroots in
 * the job's own mount namespace.  That does not depend on when Slurm copies
 * the namespace because the role sets namespace.yaml's shared: true, which
 * makes the job namespace a slave of the host's: the root's mounts, made by
 * the Prolog in slurmd's namespace before or after the copy, propagate in,
 * and the Epilogue's unmounts propagate too.  A fresh /proc of the job's
 * PID namespace is mounted over the root's /proc (own_proc()).
 *
 * Copyright: hpc.jobroot developers.  GPL-3.0-or-later.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

SPANK_PLUGIN(jobroot, 1);

#define IMAGE_NAME_MAX 64
#define REASON_MAX 512

static char run_dir[PATH_MAX] = "/run/hpc-jobroot";
static char root_base[PATH_MAX] = "/var/lib/hpc-jobroot/roots";
static char mnt_ns[PATH_MAX] = "";
static char slurmd_pidfile[PATH_MAX] = "";
static int require_root = 0;
static char opt_image[IMAGE_NAME_MAX + 1] = "";
static int opt_encrypt = 0;

/* docs/design.md: ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ */
static int valid_image_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > IMAGE_NAME_MAX || !isalnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!(isascii(c) && (isalnum(c) || c == '.' || c == '_' || c == '-')))
			return 0;
	}
	return 1;
}

static int opt_cb(int val, const char *optarg, int remote)
{
	(void)val;
	if (!optarg || !valid_image_name(optarg)) {
		slurm_error("jobroot: --jobroot-image=%s: not a valid image name "
			    "(letters, digits, '.', '_', '-'; at most 64; "
			    "starting with a letter or digit)",
			    optarg ? optarg : "");
		return -1;
	}
	(void)remote;
	strcpy(opt_image, optarg);
	return 0;
}

static struct spank_option jobroot_opt = {
	"jobroot-image", "NAME",
	"Run the job's tasks in the image NAME (see the node's allow-list; "
	"default: the node's default image, or $JOBROOT_IMAGE)",
	1, 0, opt_cb
};

static int encrypt_cb(int val, const char *optarg, int remote)
{
	(void)val; (void)optarg; (void)remote;
	opt_encrypt = 1;
	return 0;
}

static struct spank_option jobroot_encrypt_opt = {
	"jobroot-encrypt", NULL,
	"Encrypt the job's volume (dm-crypt, a random key that only the "
	"kernel holds): its data is unreadable once the job ends. The job is "
	"refused on nodes that do not allow it",
	0, 0, encrypt_cb
};

static int copy_arg(char *dst, const char *val, const char *key)
{
	if (strlen(val) >= PATH_MAX - 64 || (val[0] != '/' && strcmp(key, "mnt_ns"))) {
		slurm_error("jobroot: bad plugin argument %s=%s", key, val);
		return -1;
	}
	strcpy(dst, val);
	return 0;
}

static int parse_args(int ac, char **av)
{
	for (int i = 0; i < ac; i++) {
		if (!strncmp(av[i], "run_dir=", 8)) {
			if (copy_arg(run_dir, av[i] + 8, "run_dir"))
				return -1;
		} else if (!strncmp(av[i], "root_base=", 10)) {
			if (copy_arg(root_base, av[i] + 10, "root_base"))
				return -1;
		} else if (!strncmp(av[i], "mnt_ns=", 7)) {
			if (copy_arg(mnt_ns, av[i] + 7, "mnt_ns"))
				return -1;
		} else if (!strncmp(av[i], "slurmd_pidfile=", 15)) {
			if (copy_arg(slurmd_pidfile, av[i] + 15, "slurmd_pidfile"))
				return -1;
		} else if (!strcmp(av[i], "require=1")) {
			require_root = 1;
		} else if (!strcmp(av[i], "require=0")) {
			require_root = 0;
		} else {
			slurm_error("jobroot: unknown plugin argument '%s'", av[i]);
			return -1;
		}
	}
	/* root_base without a trailing slash, so prefix checks are exact */
	size_t n = strlen(root_base);
	while (n > 1 && root_base[n - 1] == '/')
		root_base[--n] = '\0';
	return 0;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	if (parse_args(ac, av))
		return -1;
	if (spank_context() == S_CTX_ALLOCATOR || spank_context() == S_CTX_LOCAL ||
	    spank_context() == S_CTX_REMOTE)
		return spank_option_register(sp, &jobroot_opt) == ESPANK_SUCCESS &&
		       spank_option_register(sp, &jobroot_encrypt_opt) == ESPANK_SUCCESS ? 0 : -1;
	return 0;
}

/* Submission side: pass the chosen image name on to the Prolog. */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	(void)ac; (void)av;
	if (spank_context() != S_CTX_ALLOCATOR && spank_context() != S_CTX_LOCAL)
		return 0;
	/* srun inside an existing allocation: the Prolog has already run */
	if (spank_context() == S_CTX_LOCAL && getenv("SLURM_JOB_ID") && !opt_image[0])
		return 0;
	if (opt_encrypt &&
	    spank_job_control_setenv(sp, "JOBROOT_ENCRYPT", "1", 1) != ESPANK_SUCCESS) {
		slurm_error("jobroot: cannot pass --jobroot-encrypt to the Prolog");
		return -1;
	}

	const char *name = opt_image;
	if (!name[0]) {
		const char *env = getenv("JOBROOT_IMAGE");

		if (!env || !env[0])
			return 0;
		if (!valid_image_name(env)) {
			slurm_error("jobroot: JOBROOT_IMAGE=%s: not a valid image name "
				    "(letters, digits, '.', '_', '-'; at most 64; "
				    "starting with a letter or digit)", env);
			return -1;
		}
		name = env;
	}
	if (spank_job_control_setenv(sp, "JOBROOT_IMAGE", name, 1) != ESPANK_SUCCESS) {
		slurm_error("jobroot: cannot pass the image name to the Prolog");
		return -1;
	}
	return 0;
}

/*
 * Read a small record file <run_dir>/jobs/<job id><suffix> into buf.
 * Returns 1 if read, 0 if absent, -1 on error (message logged).
 * The record must be a regular file owned by root and not writable by
 * group or others, in a root-owned directory likewise protected.
 */
static int read_record(uint32_t job_id, const char *suffix, char *buf, size_t len)
{
	char path[PATH_MAX], dir[PATH_MAX];
	struct stat st;

	if (snprintf(dir, sizeof(dir), "%s/jobs", run_dir) >= (int)sizeof(dir))
		return -1;
	if (snprintf(path, sizeof(path), "%s/%u%s", dir, job_id, suffix) >= (int)sizeof(path))
		return -1;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		slurm_error("jobroot: job %u: cannot open %s: %m", job_id, path);
		return -1;
	}
	if (stat(dir, &st) || st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) ||
	    fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		slurm_error("jobroot: job %u: %s is not a root-owned, protected "
			    "record; not trusting it", job_id, path);
		close(fd);
		return -1;
	}
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0) {
		slurm_error("jobroot: job %u: cannot read %s: %m", job_id, path);
		return -1;
	}
	buf[n] = '\0';
	return 1;
}

/* The record must be exactly one absolute path below root_base + newline. */
static int check_root_path(uint32_t job_id, char *p)
{
	size_t n = strlen(p), base = strlen(root_base);

	if (n && p[n - 1] == '\n')
		p[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (iscntrl((unsigned char)p[i]))
			goto bad;
	if (n <= base + 1 || strncmp(p, root_base, base) || p[base] != '/' ||
	    strstr(p, "/../") || strstr(p, "/./") || strstr(p, "//") ||
	    !strcmp(p + n - 3, "/..") || !strcmp(p + n - 2, "/."))
		goto bad;
	return 0;
bad:
	slurm_error("jobroot: job %u: root record is not a single absolute path "
		    "under %s", job_id, root_base);
	return -1;
}

/* slurm_error() from the task child reaches the job's stderr (srun's
 * terminal or the batch output file) as "slurmstepd-NODE: error: ...", and
 * slurmd's log. */
static void task_msg(const char *fmt, const char *a, const char *b)
{
	slurm_error(fmt, a, b);
}

/*
 * Read /proc/<pid>/<name> into buf (NUL-terminated, at most len - 1 bytes).
 * Returns the byte count, or -1 (errno set).
 */
static ssize_t read_proc(long pid, const char *name, char *buf, size_t len)
{
	char path[64];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%ld/%s", pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* 1 if pid is a process named slurmd run by root, else 0. */
static int is_slurmd(long pid)
{
	char buf[32], path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%ld", pid);
	if (stat(path, &st) || st.st_uid != 0)
		return 0;
	return read_proc(pid, "comm", buf, sizeof(buf)) > 0 && !strcmp(buf, "slurmd\n");
}

/* The parent pid of pid from /proc/<pid>/stat, or -1. */
static long parent_of(long pid)
{
	char buf[512], *p;

	if (read_proc(pid, "stat", buf, sizeof(buf)) <= 0 || !(p = strrchr(buf, ')')))
		return -1;
	long ppid = -1;
	if (sscanf(p + 1, " %*c %ld", &ppid) != 1)
		return -1;
	return ppid;
}

/* slurmd's pid from the pid file, or 0 if it names no live slurmd. */
static long slurmd_from_pidfile(void)
{
	char buf[32];
	struct stat st;
	int fd = open(slurmd_pidfile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (fstat(fd, &st) || st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		close(fd);
		slurm_verbose("jobroot: slurmd pid file %s is not root-owned and protected; "
			      "ignoring it", slurmd_pidfile);
		return 0;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	long pid = n > 0 ? (buf[n] = '\0', strtol(buf, NULL, 10)) : 0;
	return pid > 1 && is_slurmd(pid) ? pid : 0;
}

/*
 * Open slurmd's mount namespace: pid file first, else every root-owned
 * slurmd daemon process (parent not a slurmd), which must share one mount
 * namespace.  Returns an fd or -1 (message logged).
 */
static int open_slurmd_ns(uint32_t job_id)
{
	char path[64];
	struct stat st;
	long pid = slurmd_pidfile[0] ? slurmd_from_pidfile() : 0;

	if (pid) {
		snprintf(path, sizeof(path), "/proc/%ld/ns/mnt", pid);
		return open(path, O_RDONLY | O_CLOEXEC);
	}
	DIR *proc = opendir("/proc");
	struct dirent *de;
	int fd = -1, found = 0, ambiguous = 0;
	dev_t dev = 0;
	ino_t ino = 0;

	if (!proc) {
		slurm_error("jobroot: job %u: cannot read /proc: %m", job_id);
		return -1;
	}
	while ((de = readdir(proc))) {
		char *end;
		long p = strtol(de->d_name, &end, 10);

		if (*end || p <= 1 || !is_slurmd(p) || is_slurmd(parent_of(p)))
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/ns/mnt", p);
		if (stat(path, &st))
			continue;
		if (found && (st.st_dev != dev || st.st_ino != ino)) {
			ambiguous = 1;
			break;
		}
		if (!found) {
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			dev = st.st_dev;
			ino = st.st_ino;
			found = 1;
		}
	}
	closedir(proc);
	if (!found || ambiguous) {
		slurm_error("jobroot: job %u: %s; set slurmd_pidfile= in plugstack.conf to a "
			    "pid file slurmd writes", job_id, found ? "slurmd processes in "
			    "different mount namespaces" : "no slurmd process found");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * In the job's own mount namespace (mnt_ns=none), after the chroot: the
 * root's /proc is the one the Prolog mounted, which shows the PID namespace
 * the Prolog ran in (the host's).  With a job PID namespace (namespace/linux,
 * clone_ns_flags CLONE_NEWPID) the task is in another one: then mount a
 * fresh proc over /proc, from inside the job's namespaces, so the job sees
 * only its own processes.  The mount lives in the job's mount namespace
 * only (it is a slave of the host's: nothing propagates back) and goes with
 * it.  "Ours" is decided by /proc/self: in a proc of the task's own PID
 * namespace it names getpid().  Two tasks racing here may both mount; the
 * second proc on top is the same view.  Returns 0, or -1 (message logged).
 */
static int own_proc(uint32_t job_id)
{
	char buf[32];
	ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);

	if (n > 0) {
		buf[n] = '\0';
		if (strtol(buf, NULL, 10) == (long)getpid())
			return 0;
	}
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) {
		slurm_error("jobroot: job %u: cannot mount the job's own /proc in its root: %m", job_id);
		return -1;
	}
	slurm_debug("jobroot: job %u: mounted the job PID namespace's /proc in its root", job_id);
	return 0;
}

int slurm_spank_task_init_privileged(spank_t sp, int ac, char **av)
{
	uint32_t job_id = 0, step_id = 0;
	char rec[PATH_MAX + 2], reason[REASON_MAX], id[16];
	int r;

	(void)ac; (void)av;
	if (spank_get_item(sp, S_JOB_ID, &job_id) != ESPANK_SUCCESS)
		return -1;
	spank_get_item(sp, S_JOB_STEPID, &step_id);
	snprintf(id, sizeof(id), "%u", job_id);

	r = read_record(job_id, ".refused", reason, sizeof(reason));
	if (r < 0)
		return -1;
	if (r == 1) {
		for (char *c = reason; *c; c++)
			if (iscntrl((unsigned char)*c))
				*c = (*c == '\n' && c[1]) ? ' ' : (*c == '\n' ? '\0' : '?');
		task_msg("jobroot: %s%s", reason, strstr(reason, " refused") ? "" : " (job refused)");
		return -1;
	}
	r = read_record(job_id, ".root", rec, sizeof(rec));
	if (r < 0)
		return -1;
	if (r == 0) {
		if (require_root) {
			task_msg("jobroot: job %s has no job root (%s); this node "
				 "runs jobs only in job roots", id, "Prolog did not record one");
			return -1;
		}
		return 0;
	}
	if (check_root_path(job_id, rec))
		return -1;

	if (strcmp(mnt_ns, "none")) {
		int fd = mnt_ns[0] ? open(mnt_ns, O_RDONLY | O_CLOEXEC) : open_slurmd_ns(job_id);

		if (fd < 0 || setns(fd, CLONE_NEWNS)) {
			slurm_error("jobroot: job %s: cannot enter the Prolog's mount namespace (%s): %m",
				    id, mnt_ns[0] ? mnt_ns : "slurmd's");
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
	}

	/* The root must be a real, root-owned directory and a mount point
	 * (the job volume) in the namespace we chroot in. */
	struct stat st, up;
	char parent[PATH_MAX + 4];
	char *real = realpath(rec, NULL);

	snprintf(parent, sizeof(parent), "%s/..", rec);
	if (!real || strcmp(real, rec) || lstat(rec, &st) || !S_ISDIR(st.st_mode) ||
	    st.st_uid != 0 || stat(parent, &up) || st.st_dev == up.st_dev) {
		task_msg("jobroot: job %s: job root %s is not a mounted, root-owned "
			 "directory here", id, rec);
		free(real);
		return -1;
	}
	free(real);

	/*
	 * The working directory: slurmstepd calls this callback from "/" and
	 * chdir()s to the job's directory only after it (measured on 22.05.8),
	 * so that chdir resolves inside the root; a directory missing there
	 * gives Slurm's own "couldn't chdir to `DIR' ... going to /tmp
	 * instead" in the job's output.  chdir(root) before chroot(".") leaves
	 * no working directory outside the new root.
	 */
	if (chdir(rec) || chroot(".")) {
		task_msg("jobroot: job %s: chroot into %s failed", id, rec);
		return -1;
	}
	if (!strcmp(mnt_ns, "none") && own_proc(job_id))
		return -1;
	slurm_debug("jobroot: job %u step %u: task chrooted in %s", job_id, step_id, rec);
	return 0;
}
