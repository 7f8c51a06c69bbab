/*
 * Stand-in implementations (see torque_standin.h) with the behaviour the
 * patch relies on, as Torque's attr_fn_arst.c and requests.c document it:
 *  - decode_arst() splits its value at commas and newlines that are not
 *    escaped, removes the escaping backslashes, and appends the strings to an
 *    attribute that is already set;
 *  - get_job_envvar() finds the first variable whose text starts with the
 *    given name and returns what follows its '='.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "torque_standin.h"
#include "mom_func.h"
#include "log.h"

char *mom_home = NULL;

/* The job's environment (pbs_mom's start_exec.c keeps it in this global). The
 * stand-in bld_env_variables() appends "name=value" to v_envp, as Torque's does. */
struct var_table vtable = { NULL, NULL, 0, 0, 0 };

int   standin_decode_calls = 0;
int   standin_decode_fail = 0;
char *standin_last_decoded = NULL;
char  standin_last_err[8192];
char  standin_last_event[8192];
int   standin_err_count = 0;
int   standin_event_count = 0;

static void *xmalloc(size_t n)
  {
  void *p = malloc(n);

  if (p == NULL)
    {
    perror("malloc");
    exit(2);
    }

  return(p);
  }

static void append_string(struct array_strings *a, const char *s, size_t n)
  {
  char **grown = (char **)realloc(a->as_string, sizeof(char *) * (size_t)(a->as_usedptr + 1));
  char  *copy = (char *)xmalloc(n + 1);

  if (grown == NULL)
    {
    perror("realloc");
    exit(2);
    }

  memcpy(copy, s, n);
  copy[n] = '\0';
  a->as_string = grown;
  a->as_string[a->as_usedptr++] = copy;
  }

#ifdef STANDIN_TORQUE2
int decode_arst(attribute *patr, char *name, char *rn, char *val)
#else
int decode_arst(pbs_attribute *patr, const char *name, const char *rn, const char *val, int perm)
#endif
  {
  char  *buf;
  size_t n = 0;
  const char *p;

  (void)name;
  (void)rn;
#ifndef STANDIN_TORQUE2
  (void)perm;
#endif

  standin_decode_calls++;
  free(standin_last_decoded);
  standin_last_decoded = (char *)xmalloc(strlen(val) + 1);
  strcpy(standin_last_decoded, val);

  if (standin_decode_fail != 0)
    return(standin_decode_fail);

  if (patr->at_arst == NULL)
    {
    patr->at_arst = (struct array_strings *)xmalloc(sizeof(struct array_strings));
    patr->at_arst->as_usedptr = 0;
    patr->at_arst->as_string = NULL;
    }

  buf = (char *)xmalloc(strlen(val) + 1);

  for (p = val; *p != '\0'; p++)
    {
    if (*p == '\\')
      {
      if (*++p == '\0')
        break;
      buf[n++] = *p;
      }
    else if ((*p == ',') || (*p == '\n'))
      {
      append_string(patr->at_arst, buf, n);
      n = 0;
      }
    else
      {
      buf[n++] = *p;
      }
    }

  if (n > 0)
    append_string(patr->at_arst, buf, n);

  free(buf);
  patr->at_flags |= ATR_VFLAG_SET;

  return(0);
  }

char *get_job_envvar(job *pjob, STANDIN_CONST char *variable)
  {
  struct array_strings *a;
  size_t len;
  int    i;
  char  *eq;

  if ((pjob == NULL) || !(pjob->ji_wattr[JOB_ATR_variables].at_flags & ATR_VFLAG_SET))
    return(NULL);

  a = pjob->ji_wattr[JOB_ATR_variables].at_arst;
  len = strlen(variable);

  for (i = 0; (a != NULL) && (i < a->as_usedptr); i++)
    {
    if (strncmp(variable, a->as_string[i], len) == 0)
      {
      eq = strchr(a->as_string[i], '=');
      return((eq != NULL) ? eq + 1 : a->as_string[i]);
      }
    }

  return(NULL);
  }

int bld_env_variables(struct var_table *v, STANDIN_CONST char *name, STANDIN_CONST char *value)
  {
  char **grown = (char **)realloc(v->v_envp, sizeof(char *) * (size_t)(v->v_used + 2));
  char  *entry = (char *)xmalloc(strlen(name) + strlen(value) + 2);

  if (grown == NULL)
    {
    perror("realloc");
    exit(2);
    }

  sprintf(entry, "%s=%s", name, value);
  v->v_envp = grown;
  v->v_envp[v->v_used++] = entry;
  v->v_envp[v->v_used] = NULL;

  return(0);
  }

const char *standin_getenv(const char *name)
  {
  size_t len = strlen(name);
  int    i;

  for (i = 0; i < vtable.v_used; i++)
    if ((strncmp(vtable.v_envp[i], name, len) == 0) && (vtable.v_envp[i][len] == '='))
      return(vtable.v_envp[i] + len + 1);

  return(NULL);
  }

void standin_clear_env(void)
  {
  int i;

  for (i = 0; i < vtable.v_used; i++)
    free(vtable.v_envp[i]);

  free(vtable.v_envp);
  vtable.v_envp = NULL;
  vtable.v_used = 0;
  }

void standin_free_job(job *pjob)
  {
  struct array_strings *a = pjob->ji_wattr[JOB_ATR_variables].at_arst;
  int i;

  if (a != NULL)
    {
    for (i = 0; i < a->as_usedptr; i++)
      free(a->as_string[i]);
    free(a->as_string);
    free(a);
    }

  free(pjob);
  }

void log_err(int errnum, STANDIN_CONST char *routine, STANDIN_CONST char *text)
  {
  standin_err_count++;
  snprintf(standin_last_err, sizeof(standin_last_err), "%s(%d): %s", routine, errnum, text);
  }

void log_event(int eventtype, int objclass, STANDIN_CONST char *objname, STANDIN_CONST char *text)
  {
  (void)eventtype;
  (void)objclass;
  standin_event_count++;
  snprintf(standin_last_event, sizeof(standin_last_event), "%s: %s", objname, text);
  }
