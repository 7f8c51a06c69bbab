/*
 * Run the patched site_job_setup() once, as pbs_mom would in the job starter,
 * against a real $PBS_HOME/mom_priv layout (the torque_mom integration
 * target uses it on the record and root that the real hook made):
 *
 *   site_job_setup_cli MOM_HOME JOBID [PBS_O_ROOTDIR]
 *
 * MOM_HOME is $PBS_HOME/mom_priv.  The optional third argument is a
 * PBS_O_ROOTDIR the job set itself (qsub -D).  Prints the job's environment
 * entry "PBS_O_ROOTDIR=..." if site_job_setup() added one; the reason for a
 * refusal goes to stderr, as in pbs_mom.  Exits with site_job_setup()'s
 * return value (0 runs the job, 1 fails it).  Built with the stand-in
 * Torque functions in standin/ (only the names Torque's headers give).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "torque_standin.h"
#include "mom_func.h"
#include "log.h"

extern char *mom_home;
int site_job_setup(job *pjob);

int main(int argc, char **argv)
  {
  job        *pjob;
  char        var[4096 + 32];
  const char *env;
  int         rc;

  if ((argc < 3) || (argc > 4))
    {
    fprintf(stderr, "usage: %s MOM_HOME JOBID [PBS_O_ROOTDIR]\n", argv[0]);
    return(2);
    }

  mom_home = argv[1];
  pjob = (job *)calloc(1, sizeof(job));

  if (pjob == NULL)
    return(2);

  snprintf(pjob->ji_qs.ji_jobid, sizeof(pjob->ji_qs.ji_jobid), "%s", argv[2]);

  if (argc == 4)
    {
    snprintf(var, sizeof(var), "PBS_O_ROOTDIR=%s", argv[3]);
#ifdef STANDIN_TORQUE2
    decode_arst(&pjob->ji_wattr[JOB_ATR_variables], NULL, NULL, var);
#else
    decode_arst(&pjob->ji_wattr[JOB_ATR_variables], NULL, NULL, var, 0);
#endif
    }

  rc = site_job_setup(pjob);
  env = standin_getenv("PBS_O_ROOTDIR");

  if (env != NULL)
    printf("PBS_O_ROOTDIR=%s\n", env);

  standin_free_job(pjob);
  standin_clear_env();
  return(rc);
  }
