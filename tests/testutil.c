/*
 * testutil.c - helpers shared by the Check suites.
 */
#include "autoconf.h"

#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void
testutil_require_postgres(int argc, char **argv)
{
	if (getenv("PGLEASE_TEST_PGDATA") != NULL)
		return;

	char **args = calloc((size_t)argc + 3, sizeof(*args));
	if (args == NULL) {
		perror("calloc");
		exit(99);
	}
	static char bash[] = "bash";
	static char script[] = TOP_SRCDIR "/tests/pg/with-postgres";

	args[0] = bash;
	args[1] = script;
	for (int i = 0; i < argc; i++)
		args[i + 2] = argv[i];
	execv("/bin/bash", args);
	fprintf(stderr, "cannot run %s: %s\n", args[1], strerror(errno));
	exit(99);
}

static char tmpdir[256];
static pid_t tmpdir_owner;

static void
remove_tmpdir(void)
{
	char cmd[300];

	/* Check's forked test processes exit too: only the creator cleans up. */
	if (getpid() != tmpdir_owner)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

const char *
testutil_tmpdir(void)
{
	if (tmpdir[0] != '\0')
		return tmpdir;

	const char *base = getenv("TMPDIR");
	if (base == NULL || base[0] == '\0' || strlen(base) > 60)
		base = "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/pglease-test.XXXXXX", base);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		exit(99);
	}
	tmpdir_owner = getpid();
	atexit(remove_tmpdir);
	return tmpdir;
}

char *
testutil_write_file(const char *name, const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", testutil_tmpdir(), name);
	f = fopen(path, "w");
	ck_assert_msg(f != NULL, "fopen %s: %s", path, strerror(errno));
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

int
testutil_run(char *const argv[], char *out, size_t outlen)
{
	int pipefd[2];
	pid_t pid;
	size_t used = 0;
	int status;

	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		dup2(pipefd[1], STDERR_FILENO);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		char buf[4096];
		ssize_t n = read(pipefd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (outlen > 0 && used < outlen - 1) {
			size_t take = (size_t)n < outlen - 1 - used ? (size_t)n : outlen - 1 - used;
			memcpy(out + used, buf, take);
			used += take;
		}
	}
	close(pipefd[0]);
	if (outlen > 0)
		out[used] = '\0';
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int
testutil_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
