/* Stand-in for Torque's mom_func.h: get_job_envvar() is in torque_standin.h;
 * the job's environment table and bld_env_variables() as mom_func.h of
 * Torque 2.5 (char *) and 6.1 (const char *) declare them. */
#ifndef STANDIN_MOM_FUNC_H
#define STANDIN_MOM_FUNC_H
#include "torque_standin.h"

struct var_table
  {
  char  *v_block;
  char **v_envp;
  int    v_bsize;
  int    v_ensize;
  int    v_used;
  };

extern int bld_env_variables(struct var_table *, STANDIN_CONST char *, STANDIN_CONST char *);

#endif
