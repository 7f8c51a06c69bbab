/* Stand-in for Torque's log.h: the two logging calls and the constants used. */
#ifndef STANDIN_LOG_H
#define STANDIN_LOG_H

#include "torque_standin.h"

#define PBSEVENT_JOB       0x0008
#define PBS_EVENTCLASS_JOB 3

void log_err(int errnum, STANDIN_CONST char *routine, STANDIN_CONST char *text);
void log_event(int eventtype, int objclass, STANDIN_CONST char *objname, STANDIN_CONST char *text);

/* test hooks: the last messages and how many there were */
extern char standin_last_err[8192];
extern char standin_last_event[8192];
extern int  standin_err_count;
extern int  standin_event_count;

#endif
