/* notify.h: the service manager's readiness protocol (sd_notify(3)),
 * written directly: one datagram on the Unix socket named by
 * $NOTIFY_SOCKET, so no libsystemd is needed and nothing happens when
 * batchd is not run by systemd (the variable is unset). */
#ifndef BD_NOTIFY_H
#define BD_NOTIFY_H

/* Sends `state` ("READY=1", "STOPPING=1", "STATUS=..."). Returns 0 when sent
 * or when there is no service manager to tell, -1 on an error (errno). */
int bd_notify(const char *state);

#endif
