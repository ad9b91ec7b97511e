/*
 * fdpass.h - send and receive SEQPACKET messages with at most one file
 * descriptor (SCM_RIGHTS) each.
 */
#ifndef PGL_FDPASS_H
#define PGL_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Sends len bytes as one message, with fd attached when fd >= 0.  Never
 * raises SIGPIPE.  Returns len, or -1 with errno (EAGAIN on a full
 * non-blocking socket, EPIPE when the peer is gone).
 */
ssize_t fdpass_send(int sock, const void *buf, size_t len, int fd)
	__attribute__((warn_unused_result));

/*
 * fdpass_send() that never waits, whatever the socket's mode (MSG_DONTWAIT):
 * -1 with EAGAIN when the peer's queue is full.  Async-signal-safe.
 */
ssize_t fdpass_send_nowait(int sock, const void *buf, size_t len, int fd)
	__attribute__((warn_unused_result));

/* *fd after a message whose descriptor the kernel could not install. */
#define FDPASS_DROPPED (-2)

/*
 * Receives one message into buf.  When fd is NULL no descriptor is expected;
 * otherwise *fd gets the one attached, -1 when none was, or FDPASS_DROPPED
 * when one was sent but could not be received (the control data came back
 * truncated with nothing in it: the process is out of descriptors, or a
 * security module refused it).  Received descriptors are close-on-exec.
 * Returns the message length (0 at end of stream), or -1 with errno:
 * EMSGSIZE when the message was larger than cap, EPROTO when the message
 * carried more descriptors than allowed or truncated control data where
 * none was expected (all received descriptors are closed then), or the
 * error of recvmsg (EAGAIN, EINTR, ...).
 */
ssize_t fdpass_recv(int sock, void *buf, size_t cap, int *fd)
	__attribute__((warn_unused_result));

/* Messages fdpass_recv_batch() takes in one call, at most. */
#define FDPASS_BATCH_MAX 16

/*
 * Receives up to count messages that must carry no descriptor, in one
 * system call and without blocking: message i goes to bufs + i * cap, and
 * lens[i] gets its length (0: end of stream) or minus the errno
 * fdpass_recv() would have given for it (EMSGSIZE, EPROTO).  Returns the
 * number received, or -1 with errno (EAGAIN when none was queued).  Fewer
 * than count means none was left, or an error came after them: the socket
 * then polls readable and the next call returns it.
 */
int fdpass_recv_batch(int sock, void *bufs, size_t cap, ssize_t *lens, unsigned count)
	__attribute__((warn_unused_result));

#endif
