/*
 * check_pgproto.c - the PostgreSQL message writer: exact framing, never a
 * byte past the buffer or past a message's declared body, and a length of
 * 0 for anything not whole; the broker's Query, FunctionCall and Terminate;
 * and what the writer writes, the reader reads back.
 */
#include "autoconf.h"

#include "common/pgproto.h"
#include "testutil.h"

#include <check.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define GUARD 0xa5

/* A buffer of cap bytes followed by guard bytes that must stay untouched. */
struct guarded {
	uint8_t buf[256];
	size_t cap;
};

static void
guard(struct guarded *g, size_t cap)
{
	memset(g->buf, GUARD, sizeof(g->buf));
	g->cap = cap;
}

static void
check_guard(const struct guarded *g)
{
	for (size_t i = g->cap; i < sizeof(g->buf); i++)
		ck_assert_msg(g->buf[i] == GUARD, "byte %zu past a buffer of %zu written", i, g->cap);
}

START_TEST(test_framing)
{
	struct guarded g;
	struct pgproto_out o;
	static const uint8_t want[] = {
		'R', 0, 0, 0, 8, 0, 0, 0, 0,
		'S', 0, 0, 0, 8, 'a', 0, 'b', 0,
		'Z', 0, 0, 0, 5, 'I',
	};

	guard(&g, sizeof(want));
	pgproto_out_init(&o, g.buf, g.cap);
	ck_assert(pgproto_begin(&o, 'R', 4));
	pgproto_put32(&o, 0);
	ck_assert(pgproto_begin(&o, 'S', 4));
	pgproto_put_cstring(&o, "a");
	pgproto_put_cstring(&o, "b");
	ck_assert(pgproto_begin(&o, 'Z', 1));
	pgproto_put(&o, "I", 1);
	ck_assert_uint_eq(pgproto_out_len(&o), sizeof(want));
	ck_assert_mem_eq(g.buf, want, sizeof(want));
	check_guard(&g);
}
END_TEST

/* Every capacity short of the whole: nothing past it, and a length of 0. */
START_TEST(test_too_small)
{
	for (size_t cap = 0; cap < 14; cap++) {
		struct guarded g;
		struct pgproto_out o;

		guard(&g, cap);
		pgproto_out_init(&o, g.buf, g.cap);
		if (pgproto_begin(&o, 'R', 4))
			pgproto_put32(&o, 7);
		if (pgproto_begin(&o, 'Z', 0))
			pgproto_put(&o, "", 0);
		ck_assert_uint_eq(pgproto_out_len(&o), 0);
		ck_assert(o.full);
		check_guard(&g);
		/* once full, nothing more goes in, even what would fit */
		ck_assert(!pgproto_begin(&o, 'Z', 0));
	}
}
END_TEST

START_TEST(test_body_declared_wrong)
{
	struct guarded g;
	struct pgproto_out o;

	/* more than declared: refused at the declared end, not at the buffer's */
	guard(&g, 64);
	pgproto_out_init(&o, g.buf, g.cap);
	ck_assert(pgproto_begin(&o, 'M', 2));
	pgproto_put(&o, "abc", 3);
	ck_assert(o.full);
	ck_assert_uint_eq(pgproto_out_len(&o), 0);
	ck_assert_uint_eq(g.buf[5], GUARD);

	/* less than declared: no length for a message not whole */
	pgproto_out_init(&o, g.buf, g.cap);
	ck_assert(pgproto_begin(&o, 'M', 4));
	pgproto_put(&o, "ab", 2);
	ck_assert_uint_eq(pgproto_out_len(&o), 0);
	ck_assert(!pgproto_begin(&o, 'N', 0));

	/* a body no length word can say */
	pgproto_out_init(&o, g.buf, SIZE_MAX);
	ck_assert(!pgproto_begin(&o, 'M', (size_t)UINT32_MAX - 3));
	ck_assert_uint_eq(pgproto_out_len(&o), 0);
}
END_TEST

START_TEST(test_query_terminate)
{
	static const uint8_t want[] = { 'Q', 0, 0, 0, 13, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0 };
	static const uint8_t terminate[] = { 'X', 0, 0, 0, 4 };
	struct guarded g;

	guard(&g, sizeof(want));
	ck_assert_uint_eq(pgproto_query(g.buf, g.cap, "SELECT 1"), sizeof(want));
	ck_assert_mem_eq(g.buf, want, sizeof(want));
	check_guard(&g);
	guard(&g, sizeof(want) - 1);
	ck_assert_uint_eq(pgproto_query(g.buf, g.cap, "SELECT 1"), 0);
	check_guard(&g);

	ck_assert_uint_eq(sizeof(pgproto_terminate), sizeof(terminate));
	ck_assert_mem_eq(pgproto_terminate, terminate, sizeof(terminate));
}
END_TEST

/* The reset's nonce call: int8up (oid 1910) of one int8 in binary, a binary result. */
START_TEST(test_function_call)
{
	static const uint8_t want[] = {
		'F', 0, 0, 0, 28,
		0, 0, 0x07, 0x76,		/* the function's oid */
		0, 1, 0, 1,			/* one argument format: binary */
		0, 1, 0, 0, 0, 8,		/* one argument of 8 bytes */
		0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
		0, 1,				/* the result in binary */
	};
	struct guarded g;

	guard(&g, sizeof(want));
	ck_assert_uint_eq(pgproto_function_call_int8(g.buf, g.cap, 1910, 0x8123456789abcdefULL),
			  sizeof(want));
	ck_assert_mem_eq(g.buf, want, sizeof(want));
	check_guard(&g);
	for (size_t cap = 0; cap < sizeof(want); cap++) {
		guard(&g, cap);
		ck_assert_uint_eq(pgproto_function_call_int8(g.buf, g.cap, 1910, 1), 0);
		check_guard(&g);
	}
}
END_TEST

/* A FunctionCallResponse is the nonce only when it is exactly 8 bytes holding it. */
START_TEST(test_function_result)
{
	static const uint8_t body[] = { 0, 0, 0, 8, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
	static const uint8_t null[] = { 0xff, 0xff, 0xff, 0xff };
	static const uint8_t short4[] = { 0, 0, 0, 4, 0x89, 0xab, 0xcd, 0xef };
	static const uint8_t liar[] = { 0, 0, 0, 4, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
	struct pgproto_msg m = { .type = 'V', .body = body, .len = sizeof(body) };

	ck_assert(pgproto_function_result_is(&m, 0x8123456789abcdefULL));
	ck_assert(!pgproto_function_result_is(&m, 0x8123456789abcdeeULL));
	ck_assert(!pgproto_function_result_is(&m, 0x0123456789abcdefULL));
	m.type = 'D';
	ck_assert(!pgproto_function_result_is(&m, 0x8123456789abcdefULL));
	m = (struct pgproto_msg){ .type = 'V', .body = null, .len = sizeof(null) };
	ck_assert(!pgproto_function_result_is(&m, 0));
	m = (struct pgproto_msg){ .type = 'V', .body = short4, .len = sizeof(short4) };
	ck_assert(!pgproto_function_result_is(&m, 0x89abcdefULL));
	m = (struct pgproto_msg){ .type = 'V', .body = liar, .len = sizeof(liar) };
	ck_assert(!pgproto_function_result_is(&m, 0x8123456789abcdefULL));
	m = (struct pgproto_msg){ .type = 'V', .body = body, .len = sizeof(body) - 1 };
	ck_assert(!pgproto_function_result_is(&m, 0x8123456789abcdefULL));
}
END_TEST

/* What the writer writes, the broker's reader takes apart again. */
START_TEST(test_round_trip)
{
	uint8_t buf[128];
	struct pgproto_out o;
	static struct pgproto_reader r;
	struct pgproto_msg m;
	int sv[2];

	pgproto_out_init(&o, buf, sizeof(buf));
	if (pgproto_begin(&o, 'C', sizeof("SELECT 1")))
		pgproto_put_cstring(&o, "SELECT 1");
	if (pgproto_begin(&o, 'D', 2 + 4 + 3)) {
		pgproto_put(&o, "\0\1", 2);
		pgproto_put32(&o, 3);
		pgproto_put(&o, "abc", 3);
	}
	if (pgproto_begin(&o, 'V', 4 + 8)) {
		pgproto_put32(&o, 8);
		pgproto_put64(&o, UINT64_MAX - 1);
	}
	if (pgproto_begin(&o, 'E', sizeof("SERROR") + sizeof("C42P01") + 1)) {
		pgproto_put_cstring(&o, "SERROR");
		pgproto_put_cstring(&o, "C42P01");
		pgproto_put(&o, "", 1);
	}
	size_t len = pgproto_out_len(&o);
	ck_assert_uint_gt(len, 0);

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(write(sv[0], buf, len), (ssize_t)len);
	pgproto_reset(&r);
	ck_assert_int_eq(pgproto_fill(&r, sv[1]), 1);
	ck_assert_int_eq(pgproto_next(&r, &m), 1);
	ck_assert_int_eq(m.type, 'C');
	ck_assert_str_eq(pgproto_cstring(&m, NULL), "SELECT 1");
	ck_assert_int_eq(pgproto_next(&r, &m), 1);
	ck_assert(pgproto_datarow_is(&m, "abc"));
	ck_assert_int_eq(pgproto_next(&r, &m), 1);
	ck_assert(pgproto_function_result_is(&m, UINT64_MAX - 1));
	ck_assert_int_eq(pgproto_next(&r, &m), 1);
	ck_assert_str_eq(pgproto_error_field(&m, 'C'), "42P01");
	ck_assert_int_eq(pgproto_next(&r, &m), 0);
	ck_assert(!pgproto_pending(&r));
	close(sv[0]);
	close(sv[1]);
}
END_TEST

static Suite *
pgproto_suite(void)
{
	Suite *s = suite_create("pgproto");
	TCase *tc = tcase_create("writer");

	tcase_add_test(tc, test_framing);
	tcase_add_test(tc, test_too_small);
	tcase_add_test(tc, test_body_declared_wrong);
	tcase_add_test(tc, test_query_terminate);
	tcase_add_test(tc, test_function_call);
	tcase_add_test(tc, test_function_result);
	tcase_add_test(tc, test_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run_suite(pgproto_suite());
}
