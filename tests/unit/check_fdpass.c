/*
 * check_fdpass.c - SEQPACKET messages with at most one descriptor, one at a
 * time or in a batch: what arrives, what is refused, and that nothing
 * refused stays open.
 */
#include "autoconf.h"

#include "common/fdpass.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static void
pair(int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

/* Whether a and b refer to the same file. */
static void
assert_same_file(int a, int b)
{
	struct stat sa, sb;

	ck_assert_int_eq(fstat(a, &sa), 0);
	ck_assert_int_eq(fstat(b, &sb), 0);
	ck_assert_uint_eq(sa.st_dev, sb.st_dev);
	ck_assert_uint_eq(sa.st_ino, sb.st_ino);
}

static void
assert_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	ck_assert_int_ge(flags, 0);
	ck_assert_msg(flags & FD_CLOEXEC, "fd %d is not close-on-exec", fd);
}

/* Sends a message carrying n descriptors in one SCM_RIGHTS record, by hand. */
static void
send_fds(int sock, const void *buf, size_t len, const int *fds, int n)
{
	struct iovec iov = { .iov_base = (void *)(uintptr_t)buf, .iov_len = len };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(16 * sizeof(int))];
	} control;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	ck_assert_int_le(n, 16);
	memset(&control, 0, sizeof(control));
	msg.msg_control = control.buf;
	msg.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
	memcpy(CMSG_DATA(c), fds, (size_t)n * sizeof(int));
	ck_assert_int_eq(sendmsg(sock, &msg, MSG_NOSIGNAL), (ssize_t)len);
}

/* After a refused message, the socket still delivers the next one. */
static void
assert_next_message_fine(int tx, int rx)
{
	char buf[32];
	int fd = 77;

	ck_assert_int_eq(fdpass_send(tx, "next", 4, -1), 4);
	ck_assert_int_eq(fdpass_recv(rx, buf, sizeof(buf), &fd), 4);
	ck_assert_mem_eq(buf, "next", 4);
	ck_assert_int_eq(fd, -1);
}

START_TEST(test_no_fd)
{
	int sv[2];
	char buf[64];
	int fd = 1234;

	pair(sv);
	ck_assert_int_eq(fdpass_send(sv[0], "hello", 5, -1), 5);
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &fd), 5);
	ck_assert_mem_eq(buf, "hello", 5);
	ck_assert_int_eq(fd, -1);

	/* a receiver expecting none is content too; messages keep their bounds */
	ck_assert_int_eq(fdpass_send(sv[1], "ab", 2, -1), 2);
	ck_assert_int_eq(fdpass_send(sv[1], "cde", 3, -1), 3);
	ck_assert_int_eq(fdpass_recv(sv[0], buf, sizeof(buf), NULL), 2);
	ck_assert_mem_eq(buf, "ab", 2);
	ck_assert_int_eq(fdpass_recv(sv[0], buf, sizeof(buf), NULL), 3);
	ck_assert_mem_eq(buf, "cde", 3);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_one_fd_pipe)
{
	int sv[2], p[2];
	char buf[64];
	int fd = -1;

	pair(sv);
	ck_assert_int_eq(pipe(p), 0);	/* without O_CLOEXEC: that must come from recv */
	ck_assert_int_eq(fcntl(p[1], F_GETFD) & FD_CLOEXEC, 0);
	ck_assert_int_eq(fdpass_send(sv[0], "grant", 5, p[1]), 5);
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &fd), 5);
	ck_assert_mem_eq(buf, "grant", 5);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_ne(fd, p[1]);
	ck_assert_int_ne(fd, p[0]);
	assert_same_file(fd, p[1]);
	assert_cloexec(fd);

	/* the same pipe: what goes in the received end comes out of ours */
	ck_assert_int_eq(write(fd, "xyz", 3), 3);
	ck_assert_int_eq(read(p[0], buf, sizeof(buf)), 3);
	ck_assert_mem_eq(buf, "xyz", 3);

	/* the sender's copy is unaffected */
	ck_assert_int_eq(fcntl(p[1], F_GETFD) & FD_CLOEXEC, 0);
	close(fd);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_one_fd_file)
{
	int sv[2];
	char buf[64], path[512];
	int fd = -1;

	snprintf(path, sizeof(path), "%s", testutil_write_file("fdpass.txt", "contents"));
	int file = open(path, O_RDONLY);
	ck_assert_int_ge(file, 0);

	pair(sv);
	ck_assert_int_eq(fdpass_send(sv[0], "g", 1, file), 1);
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &fd), 1);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_ne(fd, file);
	assert_same_file(fd, file);
	assert_cloexec(fd);

	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	struct stat sf;
	ck_assert_int_eq(fstat(fd, &sf), 0);
	ck_assert_uint_eq(sf.st_ino, st.st_ino);

	/* one open file description: the offset is shared */
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(read(fd, buf, 4), 4);
	ck_assert_str_eq(buf, "cont");
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(read(file, buf, sizeof(buf)), 4);
	ck_assert_str_eq(buf, "ents");
	close(fd);
	close(file);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_two_fds)
{
	int sv[2], p[2];
	char buf[64];
	int fd = 1234;

	pair(sv);
	ck_assert_int_eq(pipe(p), 0);
	send_fds(sv[0], "two", 3, p, 2);
	int before = testutil_count_fds(0);
	ck_assert_int_gt(before, 0);

	errno = 0;
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &fd), -1);
	ck_assert_int_eq(errno, EPROTO);
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(testutil_count_fds(0), before);
	assert_next_message_fine(sv[0], sv[1]);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* More than recv has room for: the kernel truncates the control data. */
START_TEST(test_many_fds)
{
	int sv[2], fds[16];
	char buf[64];
	int fd = 1234;

	pair(sv);
	for (int i = 0; i < 16; i++) {
		fds[i] = dup(2);
		ck_assert_int_ge(fds[i], 0);
	}
	send_fds(sv[0], "many", 4, fds, 16);
	for (int i = 0; i < 16; i++)
		close(fds[i]);
	int before = testutil_count_fds(0);

	errno = 0;
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &fd), -1);
	ck_assert_int_eq(errno, EPROTO);
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(testutil_count_fds(0), before);
	assert_next_message_fine(sv[0], sv[1]);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_fd_not_expected)
{
	int sv[2], p[2];
	char buf[64];

	pair(sv);
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(fdpass_send(sv[0], "hi", 2, p[1]), 2);
	/* our last copy of the write end goes: only the one in flight remains */
	close(p[1]);
	int before = testutil_count_fds(0);

	errno = 0;
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), NULL), -1);
	ck_assert_int_eq(errno, EPROTO);
	ck_assert_int_eq(testutil_count_fds(0), before);

	/* and it was closed, not leaked: the pipe has no writer left */
	ck_assert_int_eq(read(p[0], buf, sizeof(buf)), 0);
	assert_next_message_fine(sv[0], sv[1]);
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_message_too_large)
{
	int sv[2], p[2];
	char big[200], buf[16];
	int fd = 1234;

	memset(big, 'x', sizeof(big));
	pair(sv);
	ck_assert_int_eq(fdpass_send(sv[0], big, sizeof(big), -1), (ssize_t)sizeof(big));
	errno = 0;
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &fd), -1);
	ck_assert_int_eq(errno, EMSGSIZE);
	ck_assert_int_eq(fd, -1);

	/* one byte too many */
	ck_assert_int_eq(fdpass_send(sv[0], big, sizeof(buf) + 1, -1), (ssize_t)sizeof(buf) + 1);
	errno = 0;
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), NULL), -1);
	ck_assert_int_eq(errno, EMSGSIZE);

	/* exactly the buffer: fine */
	ck_assert_int_eq(fdpass_send(sv[0], big, sizeof(buf), -1), (ssize_t)sizeof(buf));
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), NULL), (ssize_t)sizeof(buf));

	/* too large with a descriptor: refused, and the descriptor closed */
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(fdpass_send(sv[0], big, sizeof(big), p[1]), (ssize_t)sizeof(big));
	close(p[1]);
	int before = testutil_count_fds(0);
	fd = 1234;
	errno = 0;
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &fd), -1);
	ck_assert_int_eq(errno, EMSGSIZE);
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(testutil_count_fds(0), before);
	ck_assert_int_eq(read(p[0], buf, sizeof(buf)), 0);

	assert_next_message_fine(sv[0], sv[1]);
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_end_of_stream)
{
	int sv[2];
	char buf[16];
	int fd = 1234;

	pair(sv);
	ck_assert_int_eq(fdpass_send(sv[0], "last", 4, -1), 4);
	close(sv[0]);
	/* what was sent is still delivered, then the end */
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &fd), 4);
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &fd), 0);
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), NULL), 0);
	close(sv[1]);
}
END_TEST

START_TEST(test_would_block)
{
	int sv[2];
	char buf[16];
	int fd = 1234;

	pair(sv);
	ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	errno = 0;
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &fd), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(fd, -1);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* A peer that does not read: the blocking socket fills, the no-wait send says so. */
START_TEST(test_send_nowait_full)
{
	int sv[2], p[2];
	char buf[512] = { 0 };
	int sent = 0;

	pair(sv);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	/* sv[0] is blocking: fdpass_send() would wait here for ever */
	ck_assert_int_eq(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
	for (;;) {
		ssize_t n = fdpass_send_nowait(sv[0], buf, sizeof(buf), sent % 2 ? p[0] : -1);
		if (n < 0) {
			ck_assert_int_eq(errno, EAGAIN);
			break;
		}
		ck_assert_int_eq(n, (ssize_t)sizeof(buf));
		ck_assert_int_lt(++sent, 1000000);
	}
	ck_assert_int_gt(sent, 0);
	/* what went before arrives whole, and room for one more lets one more go */
	int fd = 1234;
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &fd), (ssize_t)sizeof(buf));
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(fdpass_recv(sv[1], buf, sizeof(buf), &fd), (ssize_t)sizeof(buf));
	ck_assert_int_ge(fd, 0);
	assert_same_file(fd, p[0]);
	close(fd);
	ck_assert_int_eq(fdpass_send_nowait(sv[0], buf, sizeof(buf), -1), (ssize_t)sizeof(buf));
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(test_closed_peer)
{
	int sv[2], p[2];

	/* whatever Check or the environment set: SIGPIPE would kill us */
	ck_assert_ptr_ne(signal(SIGPIPE, SIG_DFL), SIG_ERR);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	ck_assert_int_eq(sigprocmask(SIG_UNBLOCK, &set, NULL), 0);

	pair(sv);
	close(sv[1]);
	errno = 0;
	ck_assert_int_eq(fdpass_send(sv[0], "x", 1, -1), -1);
	ck_assert_int_eq(errno, EPIPE);

	ck_assert_int_eq(pipe(p), 0);
	errno = 0;
	ck_assert_int_eq(fdpass_send(sv[0], "x", 1, p[1]), -1);
	ck_assert_int_eq(errno, EPIPE);

	close(sv[0]);

	/*
	 * Linux raises no SIGPIPE on a SEQPACKET socket whatever the flags; a
	 * stream socket does, so "never raises SIGPIPE" is tested there too.
	 */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	errno = 0;
	ck_assert_int_eq(fdpass_send(sv[0], "x", 1, -1), -1);
	ck_assert_int_eq(errno, EPIPE);
	errno = 0;
	ck_assert_int_eq(fdpass_send(sv[0], "x", 1, p[1]), -1);
	ck_assert_int_eq(errno, EPIPE);
	close(sv[0]);

	/* still here, and nothing was pending */
	ck_assert_int_eq(sigpending(&set), 0);
	ck_assert_int_eq(sigismember(&set, SIGPIPE), 0);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* --- several messages in one call ----------------------------------------- */

enum { CAP = 16, N = 4 };

START_TEST(test_batch_drains)
{
	int sv[2];
	char bufs[N][CAP];
	ssize_t lens[N];

	pair(sv);
	errno = 0;
	ck_assert_int_eq(fdpass_recv_batch(sv[1], bufs, CAP, lens, N), -1);
	ck_assert_int_eq(errno, EAGAIN);	/* never blocks, even on a blocking socket */

	ck_assert_int_eq(fdpass_send(sv[0], "one", 3, -1), 3);
	ck_assert_int_eq(fdpass_send(sv[0], "two!", 4, -1), 4);
	/* fewer than asked for: the queue is empty after them */
	ck_assert_int_eq(fdpass_recv_batch(sv[1], bufs, CAP, lens, N), 2);
	ck_assert_int_eq(lens[0], 3);
	ck_assert_mem_eq(bufs[0], "one", 3);
	ck_assert_int_eq(lens[1], 4);
	ck_assert_mem_eq(bufs[1], "two!", 4);

	/* more than fit: the rest waits for the next call, in order */
	for (int i = 0; i < N + 2; i++) {
		char c = (char)('a' + i);
		ck_assert_int_eq(fdpass_send(sv[0], &c, 1, -1), 1);
	}
	ck_assert_int_eq(fdpass_recv_batch(sv[1], bufs, CAP, lens, N), N);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(lens[i], 1);
		ck_assert_int_eq(bufs[i][0], 'a' + i);
	}
	ck_assert_int_eq(fdpass_recv_batch(sv[1], bufs, CAP, lens, N), 2);
	ck_assert_int_eq(bufs[0][0], 'a' + N);
	ck_assert_int_eq(bufs[1][0], 'a' + N + 1);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_batch_refuses_one)
{
	int sv[2], p[2];
	char bufs[N][CAP], big[CAP * 2];
	ssize_t lens[N];

	pair(sv);
	ck_assert_int_eq(pipe(p), 0);
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(fdpass_send(sv[0], "ok", 2, -1), 2);
	ck_assert_int_eq(fdpass_send(sv[0], "fd", 2, p[1]), 2);
	ck_assert_int_eq(fdpass_send(sv[0], big, sizeof(big), -1), (ssize_t)sizeof(big));
	ck_assert_int_eq(fdpass_send(sv[0], "after", 5, -1), 5);
	close(p[1]);
	int before = testutil_count_fds(0);

	/* each message is judged alone; the bad ones do not hide the good */
	ck_assert_int_eq(fdpass_recv_batch(sv[1], bufs, CAP, lens, N), N);
	ck_assert_int_eq(lens[0], 2);
	ck_assert_int_eq(lens[1], -EPROTO);
	ck_assert_int_eq(lens[2], -EMSGSIZE);
	ck_assert_int_eq(lens[3], 5);
	ck_assert_mem_eq(bufs[3], "after", 5);
	/* the descriptor that came along was closed, not leaked */
	ck_assert_int_eq(testutil_count_fds(0), before);
	ck_assert_int_eq(read(p[0], big, sizeof(big)), 0);
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_batch_end_of_stream)
{
	int sv[2];
	char bufs[N][CAP];
	ssize_t lens[N];

	pair(sv);
	ck_assert_int_eq(fdpass_send(sv[0], "last", 4, -1), 4);
	close(sv[0]);
	int n = fdpass_recv_batch(sv[1], bufs, CAP, lens, N);
	ck_assert_int_ge(n, 2);
	ck_assert_int_eq(lens[0], 4);
	ck_assert_int_eq(lens[1], 0);	/* then the end */
	close(sv[1]);
}
END_TEST

static Suite *
fdpass_suite(void)
{
	Suite *s = suite_create("fdpass");
	TCase *tc = tcase_create("fdpass");

	tcase_add_test(tc, test_no_fd);
	tcase_add_test(tc, test_one_fd_pipe);
	tcase_add_test(tc, test_one_fd_file);
	tcase_add_test(tc, test_two_fds);
	tcase_add_test(tc, test_many_fds);
	tcase_add_test(tc, test_fd_not_expected);
	tcase_add_test(tc, test_message_too_large);
	tcase_add_test(tc, test_end_of_stream);
	tcase_add_test(tc, test_would_block);
	tcase_add_test(tc, test_send_nowait_full);
	tcase_add_test(tc, test_closed_peer);
	tcase_add_test(tc, test_batch_drains);
	tcase_add_test(tc, test_batch_refuses_one);
	tcase_add_test(tc, test_batch_end_of_stream);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run_suite(fdpass_suite());
}
