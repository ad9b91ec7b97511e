/*
 * replay.c - make check's half of fuzzing: runs a target's entry point on
 * every file of its committed corpus (CORPUS_DIR), one Check test per file,
 * without libFuzzer.  A crash or abort fails that file's test.
 */
#include "autoconf.h"

#include "fuzz.h"
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char **files;
static int nfiles;

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(test_corpus_file)
{
	char path[1024];
	FILE *f;
	static uint8_t buf[1 << 20];

	snprintf(path, sizeof(path), "%s/%s", CORPUS_DIR, files[_i]);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	ck_assert_int_eq(LLVMFuzzerTestOneInput(buf, n), 0);
}
END_TEST

int
main(void)
{
	DIR *d = opendir(CORPUS_DIR);

	if (d == NULL) {
		fprintf(stderr, "no corpus at %s\n", CORPUS_DIR);
		return 1;
	}
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (e->d_name[0] == '.')
			continue;
		files = realloc(files, (size_t)(nfiles + 1) * sizeof(*files));
		files[nfiles++] = strdup(e->d_name);
	}
	closedir(d);
	if (nfiles == 0) {
		fprintf(stderr, "the corpus at %s is empty\n", CORPUS_DIR);
		return 1;
	}
	qsort(files, (size_t)nfiles, sizeof(*files), by_name);

	Suite *s = suite_create("fuzz-replay");
	TCase *tc = tcase_create("corpus");
	tcase_add_loop_test(tc, test_corpus_file, 0, nfiles);
	suite_add_tcase(s, tc);
	int rc = testutil_run_suite(s);
	for (int i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	return rc;
}
