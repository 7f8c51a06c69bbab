/*
 * Unit test of the patched Torque site_job_setup() (roles/torque_mom/files/),
 * compiled against the stand-in in standin/.  Run by tests/c/run.sh as root:
 *
 *   test_site_job_setup WORKDIR
 *
 * The patched src/lib/Libsite/site_mom_jst.c must be on the include path (it
 * is compiled into this file).  WORKDIR is an empty scratch directory; the
 * binary must have been built with
 * -DJOBROOT_DEFAULT_BASE='"WORKDIR/roots"' (run.sh does that).  Prints one
 * line per check and a summary; exits 0 only if every check passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include "torque_standin.h"
#include "log.h"

/* the patched file itself, so that its static helpers can be tested too */
#include "site_mom_jst.c"

static char W[PATH_MAX];        /* work dir (real path) */
static char MOM[PATH_MAX];      /* W/mom_priv */
static char BASE[PATH_MAX];     /* W/roots: the compiled-in default base */
static int  passed = 0;
static int  failed = 0;
static const char *current = "";

static void check(int ok, const char *fmt, ...)
  {
  va_list ap;

  printf("%s %s: ", ok ? "ok  " : "FAIL", current);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");

  if (ok)
    passed++;
  else
    failed++;
  }

static void die(const char *what, const char *path)
  {
  fprintf(stderr, "setup error: %s %s: %s\n", what, path, strerror(errno));
  exit(2);
  }

static void pathf(char *out, const char *fmt, ...)
  {
  va_list ap;
  int     n;

  va_start(ap, fmt);
  n = vsnprintf(out, PATH_MAX * 2, fmt, ap);
  va_end(ap);

  if ((n < 0) || (n >= PATH_MAX * 2))
    {
    fprintf(stderr, "setup error: path too long\n");
    exit(2);
    }
  }

static void mkdir_p(const char *path)
  {
  char tmp[PATH_MAX];
  char *p;

  snprintf(tmp, sizeof(tmp), "%s", path);

  for (p = tmp + 1; *p != '\0'; p++)
    {
    if (*p == '/')
      {
      *p = '\0';
      if ((mkdir(tmp, 0755) != 0) && (errno != EEXIST))
        die("mkdir", tmp);
      *p = '/';
      }
    }

  if ((mkdir(tmp, 0755) != 0) && (errno != EEXIST))
    die("mkdir", tmp);
  }

/* write len bytes to path, then chown/chmod it */
static void put_file(const char *path, const char *data, size_t len, mode_t mode, uid_t uid)
  {
  int fd;

  unlink(path);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

  if (fd < 0)
    die("open", path);

  if ((len > 0) && (write(fd, data, len) != (ssize_t)len))
    die("write", path);

  close(fd);

  if (chown(path, uid, uid) != 0)
    die("chown", path);

  if (chmod(path, mode) != 0)
    die("chmod", path);
  }

static void record_path(char *out, const char *jobid)
  {
  pathf(out, "%s/jobs/%s.root", MOM, jobid);
  }

/* the record for jobid holding text (text_len bytes) */
static void put_record(const char *jobid, const char *text, size_t text_len, mode_t mode, uid_t uid)
  {
  char path[PATH_MAX * 2];

  record_path(path, jobid);
  put_file(path, text, text_len, mode, uid);
  }

static void put_record_line(const char *jobid, const char *root)
  {
  char text[PATH_MAX + 8];

  snprintf(text, sizeof(text), "%s\n", root);
  put_record(jobid, text, strlen(text), 0644, 0);
  }

static void remove_record(const char *jobid)
  {
  char path[PATH_MAX * 2];

  record_path(path, jobid);
  unlink(path);
  }

/* a job with id and, unless NULL, variables given as name=value strings */
static job *new_job(const char *jobid, const char *var1, const char *var2)
  {
  job *pjob = (job *)calloc(1, sizeof(job));
  const char *vars[2];
  int i;

  if (pjob == NULL)
    die("calloc", "job");

  snprintf(pjob->ji_qs.ji_jobid, sizeof(pjob->ji_qs.ji_jobid), "%s", jobid);
  vars[0] = var1;
  vars[1] = var2;

  for (i = 0; i < 2; i++)
    {
    if (vars[i] != NULL)
      {
      char buf[1024];

      snprintf(buf, sizeof(buf), "%s", vars[i]);
#ifdef STANDIN_TORQUE2
      decode_arst(&pjob->ji_wattr[JOB_ATR_variables], NULL, NULL, buf);
#else
      decode_arst(&pjob->ji_wattr[JOB_ATR_variables], NULL, NULL, buf, 0);
#endif
      }
    }

  return(pjob);
  }

static int nvars(job *pjob)
  {
  struct array_strings *a = pjob->ji_wattr[JOB_ATR_variables].at_arst;

  return((a == NULL) ? 0 : a->as_usedptr);
  }

/* what site_job_setup() wrote to fd 2 (the job's stderr in pbs_mom) */
static char job_stderr[16384];
static int  saved_fd2 = -1;
static int  capture_fd = -1;

static void stderr_begin(void)
  {
  char path[PATH_MAX * 2];

  fflush(stderr);
  pathf(path, "%s/stderr.txt", W);
  capture_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  saved_fd2 = dup(2);

  if ((capture_fd < 0) || (saved_fd2 < 0) || (dup2(capture_fd, 2) < 0))
    die("redirect stderr to", path);
  }

static void stderr_end(void)
  {
  ssize_t n;

  dup2(saved_fd2, 2);
  close(saved_fd2);
  n = pread(capture_fd, job_stderr, sizeof(job_stderr) - 1, 0);
  job_stderr[(n > 0) ? n : 0] = '\0';
  close(capture_fd);
  }

/*
 * Run site_job_setup() on a fresh job; check its return code, the value of
 * PBS_O_ROOTDIR afterwards (NULL: must be unset), and, for failures, that the
 * logged reason contains want_log.
 */
static void expect(const char *name, const char *jobid, int want_rc,
                   const char *want_root, const char *want_log)
  {
  job  *pjob = new_job(jobid, "PBS_O_HOME=/home/u", "PBS_O_WORKDIR=/w");
  int   errs = standin_err_count;
  int   before;
  int   rc;
  char *got;
  char  var[] = "PBS_O_ROOTDIR";

  const char *env;

  current = name;
  before = nvars(pjob);
  standin_clear_env();
  stderr_begin();
  rc = site_job_setup(pjob);
  stderr_end();
  got = get_job_envvar(pjob, var);
  env = standin_getenv(var);

  check(rc == want_rc, "returns %d (want %d)", rc, want_rc);

  if (want_root == NULL)
    {
    check(got == NULL, "PBS_O_ROOTDIR unset (got %s)", got ? got : "unset");
    check(nvars(pjob) == before, "variables unchanged (%d, want %d)", nvars(pjob), before);
    check(env == NULL, "PBS_O_ROOTDIR not in the job's environment");
    }
  else
    {
    check((got != NULL) && (strcmp(got, want_root) == 0),
          "PBS_O_ROOTDIR is the root (%lu bytes)", (unsigned long)strlen(want_root));
    check(nvars(pjob) == before + 1, "one variable added, others kept (%d, want %d)",
          nvars(pjob), before + 1);
    check((env != NULL) && (strcmp(env, want_root) == 0) && (vtable.v_used == 1),
          "PBS_O_ROOTDIR=<root> in the job's environment, once");
    }

  if (want_rc != 0)
    {
    check((standin_err_count == errs + 1) && (strstr(standin_last_err, want_log) != NULL),
          "logged reason contains '%s' (log: %.200s)", want_log, standin_last_err);
    check((strncmp(job_stderr, "hpc-jobroot: job ", 17) == 0) &&
          (strstr(job_stderr, want_log) != NULL) &&
          (strchr(job_stderr, '\n') == job_stderr + strlen(job_stderr) - 1),
          "one line with the reason on the job's stderr");
    }
  else
    {
    check(standin_err_count == errs, "nothing logged as an error");
    check(job_stderr[0] == '\0', "nothing on the job's stderr");
    }

  standin_free_job(pjob);
  }

/*
 * A job that set PBS_O_ROOTDIR=setroot itself (qsub -D): run site_job_setup();
 * check its return code and, on failure, the reason; the job's variable must
 * stay as the job set it and nothing may be added to its environment.
 */
static void expect_set(const char *name, const char *jobid, const char *setroot,
                       int want_rc, const char *want_log)
  {
  char  setvar[PATH_MAX * 2 + 32];
  job  *pjob;
  int   errs = standin_err_count;
  int   before;
  int   rc;
  char *got;
  char  var[] = "PBS_O_ROOTDIR";

  snprintf(setvar, sizeof(setvar), "PBS_O_ROOTDIR=%s", setroot);
  pjob = new_job(jobid, setvar, "PBS_O_HOME=/home/u");
  current = name;
  before = nvars(pjob);
  standin_clear_env();
  stderr_begin();
  rc = site_job_setup(pjob);
  stderr_end();
  got = get_job_envvar(pjob, var);

  check(rc == want_rc, "returns %d (want %d)", rc, want_rc);
  check((got != NULL) && (strcmp(got, setroot) == 0), "the job's PBS_O_ROOTDIR is unchanged");
  check(nvars(pjob) == before, "no variable added (%d, want %d)", nvars(pjob), before);
  check(vtable.v_used == 0, "nothing added to the job's environment");

  if (want_rc != 0)
    {
    check((standin_err_count == errs + 1) && (strstr(standin_last_err, want_log) != NULL),
          "logged reason contains '%s' (log: %.200s)", want_log, standin_last_err);
    check((strncmp(job_stderr, "hpc-jobroot: job ", 17) == 0) &&
          (strstr(job_stderr, want_log) != NULL),
          "the reason on the job's stderr");
    }
  else
    {
    check(standin_err_count == errs, "nothing logged as an error");
    }

  standin_free_job(pjob);
  }

/*
 * jobroot_escape() into heap buffers of exactly the needed size and one byte
 * less, so that AddressSanitizer sees any write past the end.
 */
static void escape_case(const char *in, const char *want)
  {
  size_t need = strlen(want) + 1;
  char  *out;
  int    rc;

  current = "jobroot_escape() bounds";
  out = (char *)malloc(need);
  if (out == NULL)
    die("malloc", "escape");
  rc = jobroot_escape(out, need, in);
  check((rc == 0) && (strcmp(out, want) == 0), "'%s' -> '%s' in %lu bytes", in, out,
        (unsigned long)need);
  free(out);

  out = (char *)malloc(need - 1);
  if (out == NULL)
    die("malloc", "escape");
  rc = jobroot_escape(out, need - 1, in);
  check((rc == -1) && (strlen(out) < need - 1), "'%s' refused in %lu bytes, output terminated",
        in, (unsigned long)(need - 1));
  free(out);
  }

/* a directory below BASE/<sub> whose path is exactly total bytes long */
static void make_long_dir(char *out, const char *sub, size_t total, char fill)
  {
  char   comp[256];
  size_t len;
  size_t step;

  pathf(out, "%s/%s", BASE, sub);
  mkdir_p(out);
  len = strlen(out);

  while (len < total)
    {
    /* each component adds '/' and up to 200 bytes */
    step = total - len - 1;
    if (step > 200)
      step = 200;
    if ((total - len - 1 - step > 0) && (total - len - 1 - step < 2))
      step -= 2;  /* never leave a remainder too short for "/x" */
    memset(comp, fill, step);
    comp[0] = 'd';
    comp[step] = '\0';
    strcat(out, "/");
    strcat(out, comp);
    len = strlen(out);

    if ((mkdir(out, 0755) != 0) && (errno != EEXIST))
      die("mkdir", out);
    }
  }

int main(int argc, char **argv)
  {
  char path[PATH_MAX * 2];
  char root[PATH_MAX * 2];
  char other[PATH_MAX * 2];
  char text[PATH_MAX * 3];
  char *big;
  size_t n;

  if (argc != 2)
    {
    fprintf(stderr, "usage: %s WORKDIR\n", argv[0]);
    return(2);
    }

  if (geteuid() != 0)
    {
    fprintf(stderr, "test_site_job_setup: must run as root (it checks file ownership)\n");
    return(2);
    }

  if (realpath(argv[1], W) == NULL)
    die("realpath", argv[1]);

  pathf(MOM, "%s/mom_priv", W);
  pathf(BASE, "%s/roots", W);

  if (strcmp(BASE, JOBROOT_DEFAULT_BASE) != 0)
    {
    fprintf(stderr, "built with JOBROOT_DEFAULT_BASE=%s, want %s\n", JOBROOT_DEFAULT_BASE, BASE);
    return(2);
    }

  pathf(path, "%s/jobs", MOM);
  mkdir_p(path);
  mkdir_p(BASE);
  pathf(root, "%s/123.srv.example.org", BASE);
  mkdir_p(root);
  pathf(other, "%s/outside/j", W);
  mkdir_p(other);
  mom_home = MOM;

  /* --- escaping at the buffer's bounds --- */

  escape_case("a,b\\c", "a\\,b\\\\c");
  escape_case("ab,", "ab\\,");
  escape_case("ab\\", "ab\\\\");
  escape_case("plain", "plain");
  escape_case(",", "\\,");
  {
  char one[1];

  current = "jobroot_escape() bounds";
  check(jobroot_escape(one, 0, "x") == -1, "zero-size buffer refused");
  check((jobroot_escape(one, 1, "") == 0) && (one[0] == '\0'), "empty string in 1 byte");
  }

  /* --- the record's presence and format --- */

  expect("no record", "1.srv", 0, NULL, "");

  put_record("2.srv", "", 0, 0644, 0);
  expect("empty record", "2.srv", 1, NULL, "is empty");

  put_record("3.srv", "\n", 1, 0644, 0);
  expect("record holding only a newline", "3.srv", 1, NULL, "is empty");

  put_record_line("4.srv", root);
  expect("trailing newline stripped", "4.srv", 0, root, "");

  put_record("5.srv", root, strlen(root), 0644, 0);
  expect("record without a newline", "5.srv", 0, root, "");

  snprintf(text, sizeof(text), "%s\n\n", root);
  put_record("6.srv", text, strlen(text), 0644, 0);
  expect("two trailing newlines", "6.srv", 1, NULL, "control character");

  snprintf(text, sizeof(text), "%s\tx\n", root);
  put_record("7.srv", text, strlen(text), 0644, 0);
  expect("control character", "7.srv", 1, NULL, "control character");

  snprintf(text, sizeof(text), "%s", root);
  n = strlen(text);
  memcpy(text + n, "\0/x\n", 4);
  put_record("8.srv", text, n + 4, 0644, 0);
  expect("embedded NUL byte", "8.srv", 1, NULL, "NUL byte");

  /* --- escaping --- */

  pathf(path, "%s/a,b\\c,,d\\\\", BASE);
  mkdir_p(path);
  put_record_line("9.srv", path);
  expect("commas and backslashes", "9.srv", 0, path, "");
  snprintf(text, sizeof(text), "PBS_O_ROOTDIR=%s/a\\,b\\\\c\\,\\,d\\\\\\\\", BASE);
  current = "commas and backslashes";
  check((standin_last_decoded != NULL) && (strcmp(standin_last_decoded, text) == 0),
        "decode_arst() got the escaped value (%s)", standin_last_decoded);

  /* --- length limits: the kernel's PATH_MAX - 1 bytes is the longest path --- */

  make_long_dir(path, "long", PATH_MAX - 1, 'x');
  current = "path at the limit";
  check(strlen(path) == PATH_MAX - 1, "fixture is %lu bytes", (unsigned long)strlen(path));
  put_record_line("10.srv", path);
  expect("path at the limit (4095 bytes + newline)", "10.srv", 0, path, "");

  put_record("11.srv", path, strlen(path), 0644, 0);
  expect("path at the limit, no newline", "11.srv", 0, path, "");

  make_long_dir(path, "commas", PATH_MAX - 1, ',');
  put_record_line("12.srv", path);
  expect("path at the limit, mostly commas (escaped: twice as long)", "12.srv", 0, path, "");

  make_long_dir(path, "long", PATH_MAX - 1, 'x');
  strcat(path, "y");  /* one byte over: need not exist, the length is refused first */
  put_record_line("13.srv", path);
  expect("path one byte over the limit", "13.srv", 1, NULL, "too long");

  put_record("14.srv", path, strlen(path), 0644, 0);
  expect("path one byte over, no newline", "14.srv", 1, NULL, "too long");

  snprintf(text, sizeof(text), "%sz\n", path);
  put_record("15.srv", text, strlen(text), 0644, 0);
  expect("record two bytes over", "15.srv", 1, NULL, "too long");

  n = 1 << 20;
  big = (char *)malloc(n);
  if (big == NULL)
    die("malloc", "big");
  memset(big, '/', n);
  put_record("16.srv", big, n, 0644, 0);
  free(big);
  expect("1 MiB record", "16.srv", 1, NULL, "too long");

  /* --- the record's owner, mode and type --- */

  put_record("17.srv", root, strlen(root), 0644, 1000);
  expect("record not owned by root", "17.srv", 1, NULL, "owned by uid 1000");

  put_record("18.srv", root, strlen(root), 0664, 0);
  expect("group-writable record", "18.srv", 1, NULL, "writable by group or others");

  put_record("19.srv", root, strlen(root), 0646, 0);
  expect("world-writable record", "19.srv", 1, NULL, "writable by group or others");

  put_record("20.srv", root, strlen(root), 0600, 0);
  expect("mode 0600 record", "20.srv", 0, root, "");

  pathf(path, "%s/target", W);
  put_file(path, root, strlen(root), 0644, 0);
  record_path(text, "21.srv");
  if (symlink(path, text) != 0)
    die("symlink", text);
  expect("record is a symlink", "21.srv", 1, NULL, "cannot open");

  record_path(text, "22.srv");
  mkdir_p(text);
  expect("record is a directory", "22.srv", 1, NULL, "not a regular file");

  record_path(text, "23.srv");
  if (mkfifo(text, 0644) != 0)
    die("mkfifo", text);
  expect("record is a FIFO (must not block)", "23.srv", 1, NULL, "not a regular file");

  /* --- the root must be a directory below the base --- */

  put_record_line("24.srv", other);
  expect("root outside the base", "24.srv", 1, NULL, "not below the job-root base");

  pathf(path, "%s_evil/j", BASE);
  mkdir_p(path);
  put_record_line("25.srv", path);
  expect("root whose name only starts with the base", "25.srv", 1, NULL, "not below");

  pathf(path, "%s/../outside/j", BASE);
  put_record_line("26.srv", path);
  expect("root escaping with ..", "26.srv", 1, NULL, "not below");

  pathf(path, "%s/link", BASE);
  if (symlink(other, path) != 0)
    die("symlink", path);
  put_record_line("27.srv", path);
  expect("symlink below the base pointing outside", "27.srv", 1, NULL, "not below");

  put_record_line("28.srv", BASE);
  expect("the base itself", "28.srv", 1, NULL, "not below");

  put_record_line("29.srv", "/");
  expect("root /", "29.srv", 1, NULL, "not below");

  put_record_line("30.srv", "roots/123.srv.example.org");
  expect("relative path", "30.srv", 1, NULL, "not an absolute path");

  pathf(path, "%s/missing", BASE);
  put_record_line("31.srv", path);
  expect("root does not exist", "31.srv", 1, NULL, "No such file");

  pathf(path, "%s/plainfile", BASE);
  put_file(path, "x", 1, 0644, 0);
  put_record_line("32.srv", path);
  expect("root is a file", "32.srv", 1, NULL, "not a directory");

  /* --- PBS_O_ROOTDIR set by the job (qsub -D DIR): only its own root passes --- */

  put_record_line("33.srv", root);
  expect_set("qsub -D outside the base, with a record", "33.srv", other, 1,
             "PBS_O_ROOTDIR set by the job");
  expect_set("qsub -D /, with a record", "33.srv", "/", 1, "not below the job-root base");
  remove_record("33.srv");
  expect_set("qsub -D outside the base, no record", "33.srv", other, 1,
             "not below the job-root base");
  expect_set("qsub -D missing directory, no record", "33.srv", "/nonexistent/x", 1,
             "No such file");
  expect_set("qsub -D another job's root, no record", "33.srv", root, 1,
             "no job root was prepared for it");
  pathf(path, "%s/own33", BASE);
  mkdir_p(path);
  put_record_line("33.srv", path);
  expect_set("qsub -D another job's root, with a record", "33.srv", root, 1,
             "is not its job root");
  pathf(text, "%s/link", BASE);
  expect_set("qsub -D a symlink below the base pointing outside", "33.srv", text, 1,
             "not below the job-root base");
  expect_set("qsub -D its own root", "33.srv", path, 0, "");
  pathf(text, "%s/../roots/own33", BASE);
  expect_set("qsub -D its own root, by another spelling", "33.srv", text, 0, "");
  put_record("33.srv", path, strlen(path), 0666, 0);
  expect_set("qsub -D its own root, but a writable record", "33.srv", path, 1,
             "writable by group or others");
  remove_record("33.srv");

  /* --- job ids --- */

  pathf(path, "%s/123_4.srv", BASE);
  mkdir_p(path);
  put_record_line("123[4].srv", path);
  expect("array job id", "123[4].srv", 0, path, "");

  expect("job id with a slash", "../x", 1, NULL, "not usable in a file name");

  /* --- decode_arst() failing --- */

  standin_decode_fail = 15;
  expect("decode_arst() fails", "4.srv", 1, NULL, "cannot add PBS_O_ROOTDIR");
  standin_decode_fail = 0;

  /* --- the base from mom_priv/jobroot_base --- */

  pathf(path, "%s/roots2/j", W);
  mkdir_p(path);
  pathf(text, "%s/roots2\n", W);
  pathf(other, "%s/jobroot_base", MOM);
  put_file(other, text, strlen(text), 0644, 0);
  put_record_line("34.srv", path);
  expect("root below the base from jobroot_base", "34.srv", 0, path, "");
  expect("root below the compiled-in base only", "4.srv", 1, NULL, "not below");

  put_file(other, text, strlen(text), 0664, 0);
  expect("group-writable jobroot_base", "34.srv", 1, NULL, "writable by group or others");

  put_file(other, text, strlen(text), 0644, 1000);
  expect("jobroot_base not owned by root", "34.srv", 1, NULL, "owned by uid 1000");

  pathf(text, "%s/nonexistent\n", W);
  put_file(other, text, strlen(text), 0644, 0);
  expect("jobroot_base names a missing directory", "34.srv", 1, NULL, "job-root base");

  put_file(other, "/\n", 2, 0644, 0);
  expect("jobroot_base is /", "34.srv", 1, NULL, "job-root base");

  unlink(other);
  expect("jobroot_base removed: compiled-in base again", "4.srv", 0, root, "");

  remove_record("4.srv");
  free(standin_last_decoded);
  standin_clear_env();

  printf("%s: %d checks passed, %d failed\n", argv[0], passed, failed);

  return((failed == 0) ? 0 : 1);
  }
