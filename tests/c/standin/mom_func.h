/* Stand-in for Torque's mom_func.h: get_job_envvar() is in torque_standin.h;
 * the job's environment table and bld_env_variables() as mom_func.h of
 * Torque 2.5 to 6.1 declare them. */
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

extern void bld_env_variables(struct var_table *, char *, char *);

#endif
