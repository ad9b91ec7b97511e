/*
 * fdpass.c - SCM_RIGHTS over SOCK_SEQPACKET, one descriptor per message.
 */
#include "autoconf.h"

#include "common/fdpass.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static ssize_t
send_flags(int sock, const void *buf, size_t len, int fd, int flags)
{
	struct iovec iov = { .iov_base = (void *)(uintptr_t)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	ssize_t n;

	if (fd >= 0) {
		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	return n;
}

ssize_t
fdpass_send(int sock, const void *buf, size_t len, int fd)
{
	return send_flags(sock, buf, len, fd, 0);
}

ssize_t
fdpass_send_nowait(int sock, const void *buf, size_t len, int fd)
{
	return send_flags(sock, buf, len, fd, MSG_DONTWAIT);
}

/* Closes every descriptor carried by msg's control data. */
static void
close_all(struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			close(fd);
		}
	}
}

/* Room for a few descriptors, so that surplus ones arrive and get closed
 * instead of being dropped by the kernel behind MSG_CTRUNC. */
union fdpass_control {
	struct cmsghdr align;
	char buf[CMSG_SPACE(8 * sizeof(int))];
};

/*
 * Checks what recvmsg() returned (n bytes into msg) against what was allowed
 * (one descriptor into *fd, or none when fd is NULL).  Returns n, or -1 with
 * errno as fdpass_recv() says.
 */
static ssize_t
inspect(struct msghdr *msg, ssize_t n, int *fd)
{
	int got = -1, count = 0;

	if (fd != NULL)
		*fd = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		count += (int)k;
		if (k > 0 && got < 0)
			memcpy(&got, CMSG_DATA(c), sizeof(int));
	}
	if (msg->msg_flags & MSG_CTRUNC) {
		/* Nothing arrived where one was expected: the kernel dropped it. */
		if (fd != NULL && count == 0 && !(msg->msg_flags & MSG_TRUNC)) {
			*fd = FDPASS_DROPPED;
			return n;
		}
		close_all(msg);
		errno = EPROTO;
		return -1;
	}
	if (count > (fd != NULL ? 1 : 0)) {
		close_all(msg);
		errno = EPROTO;
		return -1;
	}
	if (msg->msg_flags & MSG_TRUNC) {
		close_all(msg);
		errno = EMSGSIZE;
		return -1;
	}
	if (fd != NULL)
		*fd = got;
	return n;
}

ssize_t
fdpass_recv(int sock, void *buf, size_t cap, int *fd)
{
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	union fdpass_control control;
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buf, .msg_controllen = sizeof(control.buf),
	};
	ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);

	if (n < 0) {
		if (fd != NULL)
			*fd = -1;
		return -1;
	}
	return inspect(&msg, n, fd);
}

int
fdpass_recv_batch(int sock, void *bufs, size_t cap, ssize_t *lens, unsigned count)
{
	struct mmsghdr mm[FDPASS_BATCH_MAX];
	struct iovec iov[FDPASS_BATCH_MAX];
	union fdpass_control control[FDPASS_BATCH_MAX];
	int n;

	if (count > FDPASS_BATCH_MAX)
		count = FDPASS_BATCH_MAX;
	for (unsigned i = 0; i < count; i++) {
		iov[i] = (struct iovec){ .iov_base = (char *)bufs + i * cap, .iov_len = cap };
		mm[i].msg_hdr = (struct msghdr){
			.msg_iov = &iov[i], .msg_iovlen = 1,
			.msg_control = control[i].buf, .msg_controllen = sizeof(control[i].buf),
		};
	}
	do
		n = recvmmsg(sock, mm, count, MSG_DONTWAIT | MSG_CMSG_CLOEXEC, NULL);
	while (n < 0 && errno == EINTR);
	for (int i = 0; i < n; i++) {
		lens[i] = inspect(&mm[i].msg_hdr, (ssize_t)mm[i].msg_len, NULL);
		if (lens[i] < 0)
			lens[i] = -errno;
	}
	return n;
}
