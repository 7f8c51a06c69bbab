/* Stand-in for Torque's mom_func.h: get_job_envvar() is in torque_standin.h. */
#include "torque_standin.h"
