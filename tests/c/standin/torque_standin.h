/*
 * A small stand-in, written for hpc.jobroot's tests, for the few Torque types
 * and functions that the site_job_setup() patch touches.  It is not Torque
 * code: only the names and argument types match, so that the patched function
 * compiles unchanged.  Build with -DSTANDIN_TORQUE2 for the Torque 2.x
 * signatures (plain char *), without it for the 4.1 - 6.1 ones (const char *,
 * decode_arst() with a fifth argument).
 */
#ifndef TORQUE_STANDIN_H
#define TORQUE_STANDIN_H

#include <stddef.h>

#ifdef STANDIN_TORQUE2
#define STANDIN_CONST
#else
#define STANDIN_CONST const
#endif

#define ATR_VFLAG_SET 0x01

/* a job variable list: what decode_arst() builds from "A=1,B=2" */
struct array_strings
  {
  int    as_usedptr;    /* strings in use */
  char **as_string;     /* the strings, each "NAME=value" */
  };

typedef struct pbs_attribute
  {
  int                   at_flags;
  struct array_strings *at_arst;
  } pbs_attribute;

typedef pbs_attribute attribute;  /* Torque 2.x name */

enum job_atr { JOB_ATR_jobname, JOB_ATR_variables, JOB_ATR_LAST };

#define STANDIN_JOBID_LEN 256

struct jobfix
  {
  char ji_jobid[STANDIN_JOBID_LEN + 1];
  };

typedef struct job
  {
  struct jobfix ji_qs;
  pbs_attribute ji_wattr[JOB_ATR_LAST];
  } job;

#ifdef STANDIN_TORQUE2
int decode_arst(attribute *patr, char *name, char *rn, char *val);
#else
int decode_arst(pbs_attribute *patr, const char *name, const char *rn, const char *val, int perm);
#endif

char *get_job_envvar(job *pjob, STANDIN_CONST char *variable);

/* test hooks (not in Torque) */
extern int   standin_decode_calls;     /* decode_arst() calls so far */
extern int   standin_decode_fail;      /* non-zero: decode_arst() returns it */
extern char *standin_last_decoded;     /* the last value given to decode_arst() */
void standin_free_job(job *pjob);
const char *standin_getenv(const char *name);   /* a variable in the job's environment, or NULL */
void standin_clear_env(void);                   /* empty the job's environment */

#endif /* TORQUE_STANDIN_H */
