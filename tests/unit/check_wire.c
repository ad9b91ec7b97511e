/*
 * check_wire.c - the control protocol: every message type survives an encode
 * and decode unchanged, and the decoder refuses every malformed input with a
 * reason.
 */
#include "autoconf.h"

#include "common/wire.h"
#include "testutil.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A GRANT's server parameters: three pairs, the last with an empty value. */
static const char grant_params[] = "server_version\0" "16.2\0"
				   "client_encoding\0" "UTF8\0"
				   "application_name\0" "\0";
#define GRANT_PARAMS_LEN ((uint16_t)(sizeof(grant_params) - 1))

/* An ADMIN_ROWS block: two rows of JSON literals. */
static const char admin_rows[] = "name\0" "\"main\"\0" "paused\0" "true\0" "\0"
				 "name\0" "\"other\"\0" "size\0" "3\0" "\0";
#define ADMIN_ROWS_LEN ((uint16_t)(sizeof(admin_rows) - 1))

/* The sample messages, one of each type. */
#define NSAMPLES 10

static void
sample(int i, struct wire_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->h.request_id = UINT64_C(0x0102030405060708) + (uint64_t)i;
	switch (i) {
	case 0:
		m->h.type = PGL_MSG_SESSION_HELLO;
		m->u.hello.version_min = 1;
		m->u.hello.version_max = 0x1234;
		m->u.hello.pid = 0xdeadbeef;
		break;
	case 1:
		m->h.type = PGL_MSG_SESSION_WELCOME;
		m->u.welcome.version = 2;
		m->u.welcome.acquire_timeout_ms = 5000;
		m->u.welcome.broker_pid = 4242;
		m->u.welcome.incarnation = 0x89abcdef;
		snprintf(m->u.welcome.shm_name, sizeof(m->u.welcome.shm_name), "/pglease.main");
		break;
	case 2:
		m->h.type = PGL_MSG_LEASE_ACQUIRE;
		snprintf(m->u.acquire.pool, sizeof(m->u.acquire.pool), "reporting");
		m->u.acquire.timeout_ms = 2500;
		break;
	case 3:
		m->h.type = PGL_MSG_LEASE_GRANT;
		m->u.grant.lease_id = UINT64_C(0x89abcdef00000007);
		m->u.grant.slot = 17;
		m->u.grant.backend_pid = 31337;
		snprintf(m->u.grant.user, sizeof(m->u.grant.user), "app");
		snprintf(m->u.grant.database, sizeof(m->u.grant.database), "appdb");
		m->u.grant.params = grant_params;
		m->u.grant.params_len = GRANT_PARAMS_LEN;
		break;
	case 4:
		m->h.type = PGL_MSG_LEASE_RELEASE;
		m->u.release.lease_id = UINT64_C(0xfedcba9876543210);
		m->u.release.state = WIRE_RELEASE_IN_TRANSACTION;
		break;
	case 5:
		m->h.type = PGL_MSG_LEASE_CANCEL;
		m->u.cancel.lease_id = UINT64_C(0x0000000100000002);
		break;
	case 6:
		m->h.type = PGL_MSG_SESSION_ERROR;
		m->u.error.code = 12;
		snprintf(m->u.error.message, sizeof(m->u.error.message),
			 "pool \"reporting\" is exhausted: 20 of 20 backends are leased");
		break;
	case 7:
		m->h.type = PGL_MSG_ADMIN_COMMAND;
		m->u.admin.cmd = WIRE_ADMIN_PAUSE;
		m->u.admin.timeout_ms = 30000;
		m->u.admin.id = UINT64_C(0x89abcdef00000007);
		snprintf(m->u.admin.target, sizeof(m->u.admin.target), "main");
		break;
	case 8:
		m->h.type = PGL_MSG_ADMIN_ROWS;
		m->u.rows.block = admin_rows;
		m->u.rows.len = ADMIN_ROWS_LEN;
		break;
	case 9:
		m->h.type = PGL_MSG_ADMIN_DONE;
		snprintf(m->u.done.message, sizeof(m->u.done.message), "paused main; quiet");
		break;
	default:
		ck_abort_msg("no sample %d", i);
	}
}

/* Encodes m, which must succeed. */
static size_t
encode_ok(const struct wire_msg *m, uint8_t *buf, size_t cap)
{
	size_t n = wire_encode(m, buf, cap);

	ck_assert_msg(n >= WIRE_HEADER_SIZE, "wire_encode of type %u returned %zu",
		      (unsigned)m->h.type, n);
	ck_assert_uint_le(n, cap);
	return n;
}

/* Asserts that buf is refused with a non-empty reason (containing phrase, if given). */
static void
expect_reject_at(const uint8_t *buf, size_t len, const char *phrase, const char *what, int line)
{
	struct wire_msg m;
	const char *why = NULL;
	int rc = wire_decode(buf, len, &m, &why);

	ck_assert_msg(rc == -1, "line %d: %s (%zu bytes) accepted (rc %d)", line, what, len, rc);
	ck_assert_msg(why != NULL, "line %d: %s: no reason given", line, what);
	ck_assert_msg(strlen(why) > 3, "line %d: %s: reason \"%s\" is not a sentence", line,
		      what, why);
	if (phrase != NULL)
		ck_assert_msg(strstr(why, phrase) != NULL, "line %d: %s: reason \"%s\" lacks \"%s\"",
			      line, what, why, phrase);
}
#define expect_reject(buf, len, phrase, what) \
	expect_reject_at(buf, len, phrase, what, __LINE__)

/* Asserts that buf decodes. */
static void
expect_accept_at(const uint8_t *buf, size_t len, struct wire_msg *m, const char *what, int line)
{
	const char *why = NULL;
	int rc = wire_decode(buf, len, m, &why);

	ck_assert_msg(rc == 0, "line %d: %s refused: %s", line, what, why != NULL ? why : "(null)");
}
#define expect_accept(buf, len, m, what) expect_accept_at(buf, len, m, what, __LINE__)

/* --- building messages by hand ------------------------------------------ */

struct bytes {
	uint8_t b[WIRE_MESSAGE_MAX * 2];
	size_t n;
};

static void
b_u8(struct bytes *x, uint8_t v)
{
	ck_assert_uint_lt(x->n, sizeof(x->b));
	x->b[x->n++] = v;
}

static void
b_u16(struct bytes *x, uint16_t v)
{
	b_u8(x, (uint8_t)v);
	b_u8(x, (uint8_t)(v >> 8));
}

static void
b_u32(struct bytes *x, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b_u8(x, (uint8_t)(v >> (8 * i)));
}

static void
b_u64(struct bytes *x, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b_u8(x, (uint8_t)(v >> (8 * i)));
}

static void
b_raw(struct bytes *x, const void *p, size_t n)
{
	ck_assert_uint_le(x->n + n, sizeof(x->b));
	memcpy(x->b + x->n, p, n);
	x->n += n;
}

/* A header whose payload_len is filled in by b_finish. */
static void
b_header(struct bytes *x, uint16_t type)
{
	x->n = 0;
	b_u16(x, type);
	b_u16(x, 0);
	b_u32(x, 0);
	b_u64(x, 99);
}

static void
set_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
b_finish(struct bytes *x)
{
	set_u32(x->b + 4, (uint32_t)(x->n - WIRE_HEADER_SIZE));
}

/* --- round trips --------------------------------------------------------- */

START_TEST(test_round_trip)
{
	struct wire_msg in, out;
	uint8_t buf[WIRE_MESSAGE_MAX];
	const char *why = NULL;

	sample(_i, &in);
	size_t n = encode_ok(&in, buf, sizeof(buf));

	/* the header as documented: little-endian, flags 0, payload_len */
	ck_assert_uint_eq(buf[0] | buf[1] << 8, in.h.type);
	ck_assert_uint_eq(buf[2] | buf[3] << 8, 0);
	ck_assert_uint_eq((uint32_t)buf[4] | (uint32_t)buf[5] << 8 | (uint32_t)buf[6] << 16 |
			  (uint32_t)buf[7] << 24, n - WIRE_HEADER_SIZE);
	ck_assert_uint_eq(buf[8], 0x08 + _i);
	ck_assert_uint_eq(buf[15], 0x01);

	memset(&out, 0x5a, sizeof(out));
	ck_assert_msg(wire_decode(buf, n, &out, &why) == 0, "%s: %s", wire_type_name(in.h.type),
		      why);
	ck_assert_uint_eq(out.h.type, in.h.type);
	ck_assert_uint_eq(out.h.flags, 0);
	ck_assert_uint_eq(out.h.payload_len, n - WIRE_HEADER_SIZE);
	ck_assert_uint_eq(out.h.request_id, in.h.request_id);

	switch (in.h.type) {
	case PGL_MSG_SESSION_HELLO:
		ck_assert_uint_eq(out.u.hello.version_min, in.u.hello.version_min);
		ck_assert_uint_eq(out.u.hello.version_max, in.u.hello.version_max);
		ck_assert_uint_eq(out.u.hello.pid, in.u.hello.pid);
		ck_assert_uint_eq(n, WIRE_HEADER_SIZE + 8);
		break;
	case PGL_MSG_SESSION_WELCOME:
		ck_assert_uint_eq(out.u.welcome.version, in.u.welcome.version);
		ck_assert_uint_eq(out.u.welcome.broker_pid, in.u.welcome.broker_pid);
		ck_assert_uint_eq(out.u.welcome.incarnation, in.u.welcome.incarnation);
		ck_assert_str_eq(out.u.welcome.shm_name, in.u.welcome.shm_name);
		ck_assert_uint_eq(out.u.welcome.acquire_timeout_ms, in.u.welcome.acquire_timeout_ms);
		ck_assert_uint_eq(n, WIRE_HEADER_SIZE + 10 + 2 + strlen("/pglease.main") + 4);
		break;
	case PGL_MSG_LEASE_ACQUIRE:
		ck_assert_str_eq(out.u.acquire.pool, in.u.acquire.pool);
		ck_assert_int_eq(out.u.acquire.timeout_ms, in.u.acquire.timeout_ms);
		ck_assert_uint_eq(n, WIRE_HEADER_SIZE + 2 + strlen("reporting") + 4);
		break;
	case PGL_MSG_LEASE_GRANT:
		ck_assert_uint_eq(out.u.grant.lease_id, in.u.grant.lease_id);
		ck_assert_uint_eq(out.u.grant.slot, in.u.grant.slot);
		ck_assert_uint_eq(out.u.grant.backend_pid, in.u.grant.backend_pid);
		ck_assert_str_eq(out.u.grant.user, in.u.grant.user);
		ck_assert_str_eq(out.u.grant.database, in.u.grant.database);
		ck_assert_uint_eq(out.u.grant.params_len, in.u.grant.params_len);
		/* decoded in place: points into buf */
		ck_assert_ptr_eq(out.u.grant.params, (const char *)buf + n - GRANT_PARAMS_LEN);
		ck_assert_mem_eq(out.u.grant.params, grant_params, GRANT_PARAMS_LEN);
		ck_assert_uint_eq(n, WIRE_HEADER_SIZE + 18 + (2 + 3) + (2 + 5) + GRANT_PARAMS_LEN);
		break;
	case PGL_MSG_LEASE_RELEASE:
		ck_assert_uint_eq(out.u.release.lease_id, in.u.release.lease_id);
		ck_assert_uint_eq(out.u.release.state, in.u.release.state);
		ck_assert_uint_eq(n, WIRE_HEADER_SIZE + 9);
		break;
	case PGL_MSG_LEASE_CANCEL:
		ck_assert_uint_eq(out.u.cancel.lease_id, in.u.cancel.lease_id);
		ck_assert_uint_eq(n, WIRE_HEADER_SIZE + 8);
		break;
	case PGL_MSG_SESSION_ERROR:
		ck_assert_uint_eq(out.u.error.code, in.u.error.code);
		ck_assert_str_eq(out.u.error.message, in.u.error.message);
		ck_assert_uint_eq(n, WIRE_HEADER_SIZE + 4 + strlen(in.u.error.message));
		break;
	case PGL_MSG_ADMIN_COMMAND:
		ck_assert_uint_eq(out.u.admin.cmd, in.u.admin.cmd);
		ck_assert_uint_eq(out.u.admin.timeout_ms, in.u.admin.timeout_ms);
		ck_assert_uint_eq(out.u.admin.id, in.u.admin.id);
		ck_assert_str_eq(out.u.admin.target, in.u.admin.target);
		ck_assert_uint_eq(n, WIRE_HEADER_SIZE + 2 + 4 + 8 + 2 + strlen("main"));
		break;
	case PGL_MSG_ADMIN_ROWS:
		ck_assert_uint_eq(out.u.rows.len, in.u.rows.len);
		/* decoded in place: points into buf */
		ck_assert_ptr_eq(out.u.rows.block, (const char *)buf + n - ADMIN_ROWS_LEN);
		ck_assert_mem_eq(out.u.rows.block, admin_rows, ADMIN_ROWS_LEN);
		ck_assert_uint_eq(n, WIRE_HEADER_SIZE + 2 + ADMIN_ROWS_LEN);
		break;
	case PGL_MSG_ADMIN_DONE:
		ck_assert_str_eq(out.u.done.message, in.u.done.message);
		ck_assert_uint_eq(n, WIRE_HEADER_SIZE + 2 + strlen(in.u.done.message));
		break;
	default:
		ck_abort_msg("type %u", (unsigned)in.h.type);
	}
}
END_TEST

/* The exact bytes of two messages: a change of the layout must be deliberate. */
START_TEST(test_golden_bytes)
{
	struct wire_msg m;
	uint8_t buf[64];

	memset(&m, 0, sizeof(m));
	m.h.type = PGL_MSG_SESSION_HELLO;
	m.h.request_id = UINT64_C(0x1122334455667788);
	m.u.hello.version_min = 1;
	m.u.hello.version_max = 2;
	m.u.hello.pid = 0x01020304;
	static const uint8_t hello[] = {
		0x01, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
		0x01, 0x00, 0x02, 0x00, 0x04, 0x03, 0x02, 0x01,
	};
	ck_assert_uint_eq(wire_encode(&m, buf, sizeof(buf)), sizeof(hello));
	ck_assert_mem_eq(buf, hello, sizeof(hello));

	memset(&m, 0, sizeof(m));
	m.h.type = PGL_MSG_LEASE_ACQUIRE;
	m.h.request_id = 5;
	snprintf(m.u.acquire.pool, sizeof(m.u.acquire.pool), "ab");
	m.u.acquire.timeout_ms = -1;
	static const uint8_t acquire[] = {
		0x03, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
		0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x02, 0x00, 'a', 'b', 0xff, 0xff, 0xff, 0xff,
	};
	ck_assert_uint_eq(wire_encode(&m, buf, sizeof(buf)), sizeof(acquire));
	ck_assert_mem_eq(buf, acquire, sizeof(acquire));
}
END_TEST

/* Boundary values that must be accepted. */
START_TEST(test_accepted_limits)
{
	struct wire_msg in, out;
	static uint8_t buf[WIRE_MESSAGE_MAX];
	size_t n;

	/* the default pool, a pool name of exactly the maximum, timeouts -1, 0, INT32_MAX */
	static const int32_t timeouts[] = { -1, 0, 1, INT32_MAX };
	for (size_t t = 0; t < sizeof(timeouts) / sizeof(timeouts[0]); t++) {
		sample(2, &in);
		in.u.acquire.timeout_ms = timeouts[t];
		if (t == 0)
			in.u.acquire.pool[0] = '\0';
		else if (t == 1) {
			memset(in.u.acquire.pool, 'p', WIRE_POOL_NAME_MAX);
			in.u.acquire.pool[WIRE_POOL_NAME_MAX] = '\0';
		}
		n = encode_ok(&in, buf, sizeof(buf));
		expect_accept(buf, n, &out, "ACQUIRE");
		ck_assert_int_eq(out.u.acquire.timeout_ms, timeouts[t]);
		ck_assert_str_eq(out.u.acquire.pool, in.u.acquire.pool);
	}

	/* every RELEASE state */
	for (int st = WIRE_RELEASE_CLEAN; st <= WIRE_RELEASE_BROKEN; st++) {
		sample(4, &in);
		in.u.release.state = (uint8_t)st;
		n = encode_ok(&in, buf, sizeof(buf));
		expect_accept(buf, n, &out, "RELEASE");
		ck_assert_uint_eq(out.u.release.state, st);
	}

	/* HELLO with a single version */
	sample(0, &in);
	in.u.hello.version_min = in.u.hello.version_max = 7;
	n = encode_ok(&in, buf, sizeof(buf));
	expect_accept(buf, n, &out, "HELLO");
	ck_assert_uint_eq(out.u.hello.version_min, 7);
	ck_assert_uint_eq(out.u.hello.version_max, 7);

	/* WELCOME with the longest shm name, ERROR with the longest text, empty text */
	sample(1, &in);
	memset(in.u.welcome.shm_name, 's', WIRE_SHM_NAME_MAX);
	in.u.welcome.shm_name[WIRE_SHM_NAME_MAX] = '\0';
	n = encode_ok(&in, buf, sizeof(buf));
	expect_accept(buf, n, &out, "WELCOME");
	ck_assert_uint_eq(strlen(out.u.welcome.shm_name), WIRE_SHM_NAME_MAX);

	/* A version 1 WELCOME has no acquire timeout: 4 bytes shorter, and read as 0 */
	sample(1, &in);
	size_t n2 = encode_ok(&in, buf, sizeof(buf));
	in.u.welcome.version = 1;
	n = encode_ok(&in, buf, sizeof(buf));
	ck_assert_uint_eq(n + 4, n2);
	expect_accept(buf, n, &out, "WELCOME v1");
	ck_assert_uint_eq(out.u.welcome.acquire_timeout_ms, 0);

	sample(6, &in);
	memset(in.u.error.message, 'e', WIRE_TEXT_MAX);
	in.u.error.message[WIRE_TEXT_MAX] = '\0';
	n = encode_ok(&in, buf, sizeof(buf));
	expect_accept(buf, n, &out, "ERROR");
	ck_assert_str_eq(out.u.error.message, in.u.error.message);
	in.u.error.message[0] = '\0';
	n = encode_ok(&in, buf, sizeof(buf));
	expect_accept(buf, n, &out, "ERROR");
	ck_assert_str_eq(out.u.error.message, "");

	/* GRANT without parameters */
	sample(3, &in);
	in.u.grant.params = "";
	in.u.grant.params_len = 0;
	n = encode_ok(&in, buf, sizeof(buf));
	expect_accept(buf, n, &out, "GRANT");
	ck_assert_uint_eq(out.u.grant.params_len, 0);
	ck_assert_ptr_null(wire_param(out.u.grant.params, out.u.grant.params_len, "x"));
}
END_TEST

/* The largest message there is: a GRANT with a full parameter block. */
START_TEST(test_largest_grant)
{
	static char params[WIRE_PARAMS_MAX];
	static uint8_t buf[WIRE_MESSAGE_MAX];
	struct wire_msg in, out;

	/* "p0000\0" "vvvvvv...\0" pairs filling exactly WIRE_PARAMS_MAX bytes */
	size_t i = 0;
	int k = 0;
	while (i < WIRE_PARAMS_MAX) {
		size_t left = WIRE_PARAMS_MAX - i;
		int w = snprintf(params + i, left, "p%04d", k++);
		i += (size_t)w + 1;
		left = WIRE_PARAMS_MAX - i;
		size_t vlen = left > 40 ? 10 : left - 1;
		memset(params + i, 'v', vlen);
		params[i + vlen] = '\0';
		i += vlen + 1;
	}
	ck_assert_uint_eq(i, WIRE_PARAMS_MAX);
	ck_assert_int_eq(params[WIRE_PARAMS_MAX - 1], '\0');

	sample(3, &in);
	in.u.grant.params = params;
	in.u.grant.params_len = WIRE_PARAMS_MAX;
	size_t n = encode_ok(&in, buf, sizeof(buf));
	ck_assert_uint_le(n, WIRE_MESSAGE_MAX);
	expect_accept(buf, n, &out, "GRANT");
	ck_assert_uint_eq(out.u.grant.params_len, WIRE_PARAMS_MAX);
	ck_assert_mem_eq(out.u.grant.params, params, WIRE_PARAMS_MAX);
	ck_assert_str_eq(wire_param(out.u.grant.params, out.u.grant.params_len, "p0000"),
			 "vvvvvvvvvv");
	char last[16];
	snprintf(last, sizeof(last), "p%04d", k - 1);
	ck_assert_ptr_nonnull(wire_param(out.u.grant.params, out.u.grant.params_len, last));
}
END_TEST

/* --- rejections ---------------------------------------------------------- */

/* Every prefix of every message is refused, whether its header says so or not. */
START_TEST(test_truncated)
{
	struct wire_msg in;
	uint8_t buf[WIRE_MESSAGE_MAX], cut[WIRE_MESSAGE_MAX];
	char what[64];

	sample(_i, &in);
	size_t n = encode_ok(&in, buf, sizeof(buf));
	for (size_t len = 0; len < n; len++) {
		snprintf(what, sizeof(what), "%s cut to %zu", wire_type_name(in.h.type), len);
		/* as sent: the header's payload_len now disagrees (or there is no header) */
		memcpy(cut, buf, len);
		expect_reject(cut, len, NULL, what);
		if (len < WIRE_HEADER_SIZE) {
			expect_reject(cut, len, "header", what);
			continue;
		}
		/* with payload_len corrected: a field is missing */
		set_u32(cut + 4, (uint32_t)(len - WIRE_HEADER_SIZE));
		expect_reject(cut, len, "truncated", what);
	}
	/* and the whole message is fine */
	struct wire_msg out;
	expect_accept(buf, n, &out, "the whole message");
}
END_TEST

START_TEST(test_payload_len_mismatch)
{
	struct wire_msg in;
	uint8_t buf[WIRE_MESSAGE_MAX];

	sample(_i, &in);
	size_t n = encode_ok(&in, buf, sizeof(buf));
	uint32_t payload = (uint32_t)(n - WIRE_HEADER_SIZE);
	static const int64_t deltas[] = { -1, 1, 2, -2 };

	for (size_t d = 0; d < sizeof(deltas) / sizeof(deltas[0]); d++) {
		set_u32(buf + 4, (uint32_t)((int64_t)payload + deltas[d]));
		expect_reject(buf, n, "length", "payload_len off by a few");
	}
	set_u32(buf + 4, 0);
	expect_reject(buf, n, "length", "payload_len 0");
	set_u32(buf + 4, UINT32_MAX);
	expect_reject(buf, n, "length", "payload_len 0xffffffff");
	set_u32(buf + 4, payload);
	struct wire_msg out;
	expect_accept(buf, n, &out, "restored payload_len");
}
END_TEST

START_TEST(test_trailing_bytes)
{
	struct wire_msg in;
	uint8_t buf[WIRE_MESSAGE_MAX];

	sample(_i, &in);
	size_t n = encode_ok(&in, buf, sizeof(buf) - 8);
	for (size_t extra = 1; extra <= 8; extra++) {
		memset(buf + n, 0, extra);
		set_u32(buf + 4, (uint32_t)(n + extra - WIRE_HEADER_SIZE));
		expect_reject(buf, n + extra, "trailing", "extra bytes after the payload");
	}
}
END_TEST

START_TEST(test_header_flags)
{
	struct wire_msg in;
	uint8_t buf[WIRE_MESSAGE_MAX];

	sample(_i, &in);
	size_t n = encode_ok(&in, buf, sizeof(buf));
	buf[2] = 0x01;
	expect_reject(buf, n, "flags", "flags 0x0001");
	buf[2] = 0x00;
	buf[3] = 0x80;
	expect_reject(buf, n, "flags", "flags 0x8000");
	buf[3] = 0x00;
	struct wire_msg out;
	expect_accept(buf, n, &out, "flags 0");
}
END_TEST

START_TEST(test_unknown_type)
{
	struct wire_msg in;
	uint8_t buf[WIRE_MESSAGE_MAX];
	static const uint16_t types[] = { 0, 11, 12, 0x0100, 0xffff };

	sample(5, &in);		/* a CANCEL's payload under other type numbers */
	size_t n = encode_ok(&in, buf, sizeof(buf));
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		buf[0] = (uint8_t)types[t];
		buf[1] = (uint8_t)(types[t] >> 8);
		expect_reject(buf, n, "type", "unknown type");
	}
	/* and wire_encode will not produce one */
	in.h.type = 11;
	ck_assert_uint_eq(wire_encode(&in, buf, sizeof(buf)), 0);
	in.h.type = 0;
	ck_assert_uint_eq(wire_encode(&in, buf, sizeof(buf)), 0);
}
END_TEST

START_TEST(test_string_too_long)
{
	static struct bytes x;
	struct wire_msg out;
	char s[WIRE_TEXT_MAX + 2];

	memset(s, 'a', sizeof(s));

	/* ACQUIRE: 63 bytes fine, 64 refused */
	b_header(&x, PGL_MSG_LEASE_ACQUIRE);
	b_u16(&x, WIRE_POOL_NAME_MAX);
	b_raw(&x, s, WIRE_POOL_NAME_MAX);
	b_u32(&x, 0);
	b_finish(&x);
	expect_accept(x.b, x.n, &out, "pool name of 63 bytes");
	ck_assert_uint_eq(strlen(out.u.acquire.pool), WIRE_POOL_NAME_MAX);

	b_header(&x, PGL_MSG_LEASE_ACQUIRE);
	b_u16(&x, WIRE_POOL_NAME_MAX + 1);
	b_raw(&x, s, WIRE_POOL_NAME_MAX + 1);
	b_u32(&x, 0);
	b_finish(&x);
	expect_reject(x.b, x.n, "too long", "pool name of 64 bytes");

	/* a length far beyond the message, too */
	b_header(&x, PGL_MSG_LEASE_ACQUIRE);
	b_u16(&x, 0xffff);
	b_raw(&x, s, 10);
	b_u32(&x, 0);
	b_finish(&x);
	expect_reject(x.b, x.n, "too long", "pool name length 65535");

	/* WELCOME's shm name */
	b_header(&x, PGL_MSG_SESSION_WELCOME);
	b_u16(&x, 1);
	b_u32(&x, 1);
	b_u32(&x, 1);
	b_u16(&x, WIRE_SHM_NAME_MAX + 1);
	b_raw(&x, s, WIRE_SHM_NAME_MAX + 1);
	b_finish(&x);
	expect_reject(x.b, x.n, "too long", "shm name of 201 bytes");

	/* ERROR's text */
	b_header(&x, PGL_MSG_SESSION_ERROR);
	b_u16(&x, 1);
	b_u16(&x, WIRE_TEXT_MAX + 1);
	b_raw(&x, s, WIRE_TEXT_MAX + 1);
	b_finish(&x);
	expect_reject(x.b, x.n, "too long", "ERROR text of 1025 bytes");
}
END_TEST

START_TEST(test_string_with_nul)
{
	static struct bytes x;

	b_header(&x, PGL_MSG_LEASE_ACQUIRE);
	b_u16(&x, 4);
	b_raw(&x, "ma\0n", 4);
	b_u32(&x, 0);
	b_finish(&x);
	expect_reject(x.b, x.n, "NUL", "pool name with a NUL");

	b_header(&x, PGL_MSG_LEASE_ACQUIRE);
	b_u16(&x, 4);
	b_raw(&x, "main", 4);
	b_u32(&x, 0);
	b_finish(&x);
	struct wire_msg out;
	expect_accept(x.b, x.n, &out, "pool name without a NUL");
	ck_assert_str_eq(out.u.acquire.pool, "main");

	/* a trailing NUL, as a C programmer might send it */
	b_header(&x, PGL_MSG_LEASE_ACQUIRE);
	b_u16(&x, 5);
	b_raw(&x, "main", 5);
	b_u32(&x, 0);
	b_finish(&x);
	expect_reject(x.b, x.n, "NUL", "pool name ending in a NUL");

	b_header(&x, PGL_MSG_SESSION_WELCOME);
	b_u16(&x, 1);
	b_u32(&x, 1);
	b_u32(&x, 1);
	b_u16(&x, 3);
	b_raw(&x, "\0/x", 3);
	b_finish(&x);
	expect_reject(x.b, x.n, "NUL", "shm name with a NUL");

	b_header(&x, PGL_MSG_SESSION_ERROR);
	b_u16(&x, 1);
	b_u16(&x, 6);
	b_raw(&x, "oops\0!", 6);
	b_finish(&x);
	expect_reject(x.b, x.n, "NUL", "ERROR text with a NUL");
}
END_TEST

/* A GRANT carrying params_len bytes of p. */
static void
grant_with(struct bytes *x, const void *p, size_t len, uint16_t params_len)
{
	b_header(x, PGL_MSG_LEASE_GRANT);
	b_u64(x, 1);
	b_u32(x, 2);
	b_u32(x, 3);
	b_u16(x, 1);		/* user "u" */
	b_raw(x, "u", 1);
	b_u16(x, 0);		/* database "" */
	b_u16(x, params_len);
	b_raw(x, p, len);
	b_finish(x);
}

struct params_case {
	const char *p;
	size_t len;
	bool ok;
};

#define PC(lit, ok) { lit, sizeof(lit) - 1, ok }
static const struct params_case params_cases[] = {
	PC("a\0" "1\0", true),
	PC("a\0" "\0", true),			/* empty value */
	PC("a\0" "1\0" "b\0" "2\0", true),
	PC("a\0", false),			/* a name without a value */
	PC("a\0" "1\0" "b\0", false),		/* odd number of strings */
	PC("\0" "1\0", false),			/* empty name */
	PC("a\0" "1\0" "\0" "2\0", false),	/* empty second name */
	PC("\0", false),
	PC("\0\0", false),
	PC("a\0" "1", false),			/* no final NUL */
	PC("a", false),
	PC("a\0" "1\0" "b", false),
	PC("a\0" "1\0" "b\0" "2", false),
};

START_TEST(test_grant_params)
{
	static struct bytes x;
	const struct params_case *c = &params_cases[_i];
	struct wire_msg out;
	char what[64];

	snprintf(what, sizeof(what), "params case %d", _i);
	grant_with(&x, c->p, c->len, (uint16_t)c->len);
	if (c->ok) {
		expect_accept(x.b, x.n, &out, what);
		ck_assert_uint_eq(out.u.grant.params_len, c->len);
		ck_assert_str_eq(wire_param(out.u.grant.params, out.u.grant.params_len, "a"),
				 c->len == 3 ? "" : "1");
	} else {
		expect_reject(x.b, x.n, "malformed", what);
	}
}
END_TEST

START_TEST(test_grant_params_too_long)
{
	static struct bytes x;
	static char p[WIRE_PARAMS_MAX + 2];

	/* "a\0" pairs: a valid block of every even length */
	for (size_t i = 0; i < sizeof(p); i += 2) {
		p[i] = 'a';
		p[i + 1] = '\0';
	}
	grant_with(&x, p, WIRE_PARAMS_MAX, WIRE_PARAMS_MAX);
	struct wire_msg out;
	expect_accept(x.b, x.n, &out, "params of 4096 bytes");

	grant_with(&x, p, WIRE_PARAMS_MAX + 2, WIRE_PARAMS_MAX + 2);
	ck_assert_uint_le(x.n, WIRE_MESSAGE_MAX);	/* refused for the block, not the size */
	expect_reject(x.b, x.n, "too long", "params of 4098 bytes");
	grant_with(&x, p, WIRE_PARAMS_MAX + 1, WIRE_PARAMS_MAX + 1);
	expect_reject(x.b, x.n, "too long", "params of 4097 bytes");

	/* a params_len beyond the maximum and beyond the message */
	grant_with(&x, p, 4, 0xffff);
	expect_reject(x.b, x.n, NULL, "params_len 65535");
	/* params_len larger than what follows */
	grant_with(&x, p, 4, 6);
	expect_reject(x.b, x.n, "truncated", "params_len past the end");
	/* params_len shorter than what follows */
	grant_with(&x, p, 6, 4);
	expect_reject(x.b, x.n, "trailing", "params_len short of the end");
}
END_TEST

START_TEST(test_release_state)
{
	static struct bytes x;
	static const unsigned states[] = { WIRE_RELEASE_BROKEN + 1, 5, 0x7f, 0x80, 0xff };

	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		b_header(&x, PGL_MSG_LEASE_RELEASE);
		b_u64(&x, 1);
		b_u8(&x, (uint8_t)states[i]);
		b_finish(&x);
		expect_reject(x.b, x.n, "state", "unknown RELEASE state");
	}
}
END_TEST

START_TEST(test_acquire_timeout)
{
	static struct bytes x;
	static const int32_t bad[] = { -2, -1000, INT32_MIN };
	struct wire_msg in, out;
	uint8_t buf[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b_header(&x, PGL_MSG_LEASE_ACQUIRE);
		b_u16(&x, 0);
		b_u32(&x, (uint32_t)bad[i]);
		b_finish(&x);
		expect_reject(x.b, x.n, "timeout", "ACQUIRE timeout below -1");

		/* the encoder does not check: the decoder is the gate */
		sample(2, &in);
		in.u.acquire.timeout_ms = bad[i];
		size_t n = wire_encode(&in, buf, sizeof(buf));
		if (n != 0)
			expect_reject(buf, n, "timeout", "encoded ACQUIRE timeout below -1");
	}
	b_header(&x, PGL_MSG_LEASE_ACQUIRE);
	b_u16(&x, 0);
	b_u32(&x, UINT32_MAX);		/* -1 */
	b_finish(&x);
	expect_accept(x.b, x.n, &out, "ACQUIRE timeout -1");
	ck_assert_int_eq(out.u.acquire.timeout_ms, -1);
	ck_assert_str_eq(out.u.acquire.pool, "");
}
END_TEST

START_TEST(test_hello_versions)
{
	static struct bytes x;

	b_header(&x, PGL_MSG_SESSION_HELLO);
	b_u16(&x, 2);
	b_u16(&x, 1);
	b_u32(&x, 1234);
	b_finish(&x);
	expect_reject(x.b, x.n, "version", "HELLO 2..1");

	b_header(&x, PGL_MSG_SESSION_HELLO);
	b_u16(&x, 0xffff);
	b_u16(&x, 0);
	b_u32(&x, 1234);
	b_finish(&x);
	expect_reject(x.b, x.n, "version", "HELLO 65535..0");
}
END_TEST

START_TEST(test_message_too_long)
{
	static struct bytes x;
	struct wire_msg in;

	/* a HELLO padded past the maximum: refused for its size, not its padding */
	sample(0, &in);
	x.n = encode_ok(&in, x.b, sizeof(x.b));
	memset(x.b + x.n, 0, WIRE_MESSAGE_MAX + 1 - x.n);
	x.n = WIRE_MESSAGE_MAX + 1;
	b_finish(&x);
	expect_reject(x.b, x.n, "too long", "HELLO of WIRE_MESSAGE_MAX + 1 bytes");

	x.n = sizeof(x.b);
	b_finish(&x);
	expect_reject(x.b, x.n, "too long", "HELLO of 2 * WIRE_MESSAGE_MAX bytes");

	/* the same padding within the limit is refused as trailing bytes */
	x.n = WIRE_MESSAGE_MAX;
	b_finish(&x);
	expect_reject(x.b, x.n, "trailing", "HELLO of WIRE_MESSAGE_MAX bytes");
}
END_TEST

/* --- wire_encode's refusals ---------------------------------------------- */

START_TEST(test_encode_field_too_long)
{
	struct wire_msg m;
	uint8_t buf[WIRE_MESSAGE_MAX];

	sample(2, &m);
	memset(m.u.acquire.pool, 'p', sizeof(m.u.acquire.pool));	/* no NUL: 64 bytes */
	ck_assert_uint_eq(wire_encode(&m, buf, sizeof(buf)), 0);

	sample(1, &m);
	memset(m.u.welcome.shm_name, 's', sizeof(m.u.welcome.shm_name));
	ck_assert_uint_eq(wire_encode(&m, buf, sizeof(buf)), 0);

	sample(6, &m);
	memset(m.u.error.message, 'e', sizeof(m.u.error.message));
	ck_assert_uint_eq(wire_encode(&m, buf, sizeof(buf)), 0);

	static char p[WIRE_PARAMS_MAX + 2];
	for (size_t i = 0; i < sizeof(p); i += 2) {
		p[i] = 'a';
		p[i + 1] = '\0';
	}
	sample(3, &m);
	m.u.grant.params = p;
	m.u.grant.params_len = WIRE_PARAMS_MAX + 2;
	ck_assert_uint_eq(wire_encode(&m, buf, sizeof(buf)), 0);
	m.u.grant.params_len = WIRE_PARAMS_MAX + 1;
	ck_assert_uint_eq(wire_encode(&m, buf, sizeof(buf)), 0);
	m.u.grant.params_len = WIRE_PARAMS_MAX;
	ck_assert_uint_gt(wire_encode(&m, buf, sizeof(buf)), 0);
}
END_TEST

/* Every buffer short of the message: 0, and nothing written past cap. */
START_TEST(test_encode_buffer_too_small)
{
	struct wire_msg m;
	uint8_t ref[WIRE_MESSAGE_MAX], buf[WIRE_MESSAGE_MAX + 16];

	sample(_i, &m);
	size_t n = encode_ok(&m, ref, sizeof(ref));
	for (size_t cap = 0; cap < n; cap++) {
		memset(buf, 0xee, sizeof(buf));
		ck_assert_msg(wire_encode(&m, buf, cap) == 0, "%s into %zu bytes",
			      wire_type_name(m.h.type), cap);
		size_t j = cap;		/* one assertion per size: millions are slow under ASan */
		while (j < sizeof(buf) && buf[j] == 0xee)
			j++;
		ck_assert_msg(j == sizeof(buf), "%s into %zu bytes wrote byte %zu",
			      wire_type_name(m.h.type), cap, j);
	}
	memset(buf, 0xee, sizeof(buf));
	ck_assert_uint_eq(wire_encode(&m, buf, n), n);
	ck_assert_mem_eq(buf, ref, n);
	ck_assert_uint_eq(buf[n], 0xee);
}
END_TEST

/* --- admin messages -------------------------------------------------------- */

/* An ADMIN_COMMAND with a command number out of the table is refused. */
START_TEST(test_admin_command_cmd)
{
	struct wire_msg in, out;
	uint8_t buf[WIRE_MESSAGE_MAX];
	static const uint16_t bad[] = { 0, WIRE_ADMIN_CMD_MAX + 1, 0xffff };

	sample(7, &in);
	for (uint16_t c = 1; c <= WIRE_ADMIN_CMD_MAX; c++) {
		in.u.admin.cmd = c;
		size_t n = encode_ok(&in, buf, sizeof(buf));
		expect_accept(buf, n, &out, "a known admin command");
		ck_assert_uint_eq(out.u.admin.cmd, c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		in.u.admin.cmd = bad[i];
		size_t n = encode_ok(&in, buf, sizeof(buf));
		expect_reject(buf, n, "admin command", "an unknown admin command");
	}
	/* "" means every pool; a name longer than a pool name is refused */
	in.u.admin.cmd = WIRE_ADMIN_RESUME;
	in.u.admin.target[0] = '\0';
	size_t n = encode_ok(&in, buf, sizeof(buf));
	expect_accept(buf, n, &out, "no target");
	ck_assert_str_eq(out.u.admin.target, "");
	struct bytes x;
	char name[WIRE_POOL_NAME_MAX + 1];
	memset(name, 'p', sizeof(name));
	b_header(&x, PGL_MSG_ADMIN_COMMAND);
	b_u16(&x, WIRE_ADMIN_PAUSE);
	b_u32(&x, 0);
	b_u64(&x, 0);
	b_u16(&x, (uint16_t)sizeof(name));
	b_raw(&x, name, sizeof(name));
	b_finish(&x);
	expect_reject(x.b, x.n, "too long", "a 64-byte pool name");
}
END_TEST

/* Row blocks: what wire_rows_valid accepts and refuses, through the decoder. */
static const struct {
	const char *block;
	size_t len;
	bool ok;
} rows_cases[] = {
	{ "", 0, true },			/* no rows */
	{ "\0", 1, true },			/* one empty row */
	{ "a\0" "1\0" "\0", 5, true },
	{ "a\0" "1\0" "\0" "b\0" "2\0" "\0", 10, true },
	{ "a\0" "1\0", 4, false },		/* a row without its end */
	{ "a\0" "\0" "\0", 4, false },	/* an empty value */
	{ "a\0", 2, false },			/* a name without its value */
	{ "a", 1, false },			/* no NUL at all */
	{ "a\0" "1", 3, false },		/* a value without its NUL */
};

START_TEST(test_admin_rows)
{
	struct bytes x;
	struct wire_msg out;

	b_header(&x, PGL_MSG_ADMIN_ROWS);
	b_u16(&x, (uint16_t)rows_cases[_i].len);
	b_raw(&x, rows_cases[_i].block, rows_cases[_i].len);
	b_finish(&x);
	ck_assert(wire_rows_valid(rows_cases[_i].block, rows_cases[_i].len) == rows_cases[_i].ok);
	if (rows_cases[_i].ok)
		expect_accept(x.b, x.n, &out, "a well-formed block");
	else
		expect_reject(x.b, x.n, "malformed", "a malformed block");
}
END_TEST

START_TEST(test_admin_rows_too_long)
{
	static char block[WIRE_ROWS_MAX + 2];
	struct wire_msg m = { .h = { .type = PGL_MSG_ADMIN_ROWS } };
	uint8_t buf[WIRE_MESSAGE_MAX];
	struct bytes x;

	/* rows of "a\0" "1\0" "\0": the largest block is accepted, one byte more is not */
	for (size_t i = 0; i + 5 <= sizeof(block); i += 5)
		memcpy(block + i, "a\0" "1\0", 5);
	size_t fit = WIRE_ROWS_MAX - WIRE_ROWS_MAX % 5;
	m.u.rows.block = block;
	m.u.rows.len = (uint16_t)fit;
	size_t n = encode_ok(&m, buf, sizeof(buf));
	expect_accept(buf, n, &m, "the longest block");
	m.u.rows.block = block;
	m.u.rows.len = WIRE_ROWS_MAX + 1;
	ck_assert_uint_eq(wire_encode(&m, buf, sizeof(buf)), 0);

	b_header(&x, PGL_MSG_ADMIN_ROWS);
	b_u16(&x, WIRE_ROWS_MAX + 1);
	b_raw(&x, block, WIRE_ROWS_MAX + 1);
	b_finish(&x);
	expect_reject(x.b, x.n, NULL, "a block over WIRE_ROWS_MAX");
}
END_TEST

/* --- helpers ------------------------------------------------------------- */

START_TEST(test_wire_param)
{
	static const char p[] = "server_version\0" "16.2\0"
				"TimeZone\0" "UTC\0"
				"client_encoding\0" "UTF8\0"
				"empty\0" "\0"
				"is_superuser\0" "off\0";
	size_t len = sizeof(p) - 1;

	ck_assert_str_eq(wire_param(p, len, "server_version"), "16.2");
	ck_assert_str_eq(wire_param(p, len, "TimeZone"), "UTC");
	ck_assert_str_eq(wire_param(p, len, "client_encoding"), "UTF8");
	ck_assert_str_eq(wire_param(p, len, "empty"), "");
	ck_assert_str_eq(wire_param(p, len, "is_superuser"), "off");
	/* the value returned points into the block */
	const char *v = wire_param(p, len, "TimeZone");
	ck_assert_ptr_eq(v, p + strlen("server_version") + 1 + strlen("16.2") + 1 +
			 strlen("TimeZone") + 1);

	/* absent, a prefix, a longer name, another case, a value: not names */
	ck_assert_ptr_null(wire_param(p, len, "DateStyle"));
	ck_assert_ptr_null(wire_param(p, len, "Time"));
	ck_assert_ptr_null(wire_param(p, len, "TimeZoneX"));
	ck_assert_ptr_null(wire_param(p, len, "timezone"));
	ck_assert_ptr_null(wire_param(p, len, "UTF8"));
	ck_assert_ptr_null(wire_param(p, len, "16.2"));
	ck_assert_ptr_null(wire_param(p, len, ""));
	ck_assert_ptr_null(wire_param(p, 0, "server_version"));

	/* only len bytes count: the last pair left out is not found */
	size_t shorter = len - (strlen("is_superuser") + 1 + strlen("off") + 1);
	ck_assert_ptr_null(wire_param(p, shorter, "is_superuser"));
	ck_assert_str_eq(wire_param(p, shorter, "empty"), "");

	/* through a decoded GRANT */
	struct wire_msg in, out;
	uint8_t buf[256];
	sample(3, &in);
	size_t n = encode_ok(&in, buf, sizeof(buf));
	expect_accept(buf, n, &out, "GRANT");
	ck_assert_str_eq(wire_param(out.u.grant.params, out.u.grant.params_len,
				    "client_encoding"), "UTF8");
	ck_assert_str_eq(wire_param(out.u.grant.params, out.u.grant.params_len,
				    "application_name"), "");
	ck_assert_ptr_null(wire_param(out.u.grant.params, out.u.grant.params_len, "UTF8"));
}
END_TEST

START_TEST(test_lease_incarnation)
{
	ck_assert_uint_eq(wire_lease_incarnation(UINT64_C(0x89abcdef00000007)), 0x89abcdefu);
	ck_assert_uint_eq(wire_lease_incarnation(UINT64_C(0x0000000100000000)), 1);
	ck_assert_uint_eq(wire_lease_incarnation(UINT64_C(0x00000000ffffffff)), 0);
	ck_assert_uint_eq(wire_lease_incarnation(0), 0);
	ck_assert_uint_eq(wire_lease_incarnation(UINT64_MAX), UINT32_MAX);
	ck_assert_uint_eq(wire_lease_incarnation(UINT64_C(0x12345678) << 32 | 0xffffffffu),
			  0x12345678u);
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(wire_type_name(PGL_MSG_SESSION_HELLO), "HELLO");
	ck_assert_str_eq(wire_type_name(PGL_MSG_SESSION_WELCOME), "WELCOME");
	ck_assert_str_eq(wire_type_name(PGL_MSG_LEASE_ACQUIRE), "ACQUIRE");
	ck_assert_str_eq(wire_type_name(PGL_MSG_LEASE_GRANT), "GRANT");
	ck_assert_str_eq(wire_type_name(PGL_MSG_LEASE_RELEASE), "RELEASE");
	ck_assert_str_eq(wire_type_name(PGL_MSG_LEASE_CANCEL), "CANCEL");
	ck_assert_str_eq(wire_type_name(PGL_MSG_SESSION_ERROR), "ERROR");
	ck_assert_str_eq(wire_type_name(PGL_MSG_ADMIN_COMMAND), "ADMIN_COMMAND");
	ck_assert_str_eq(wire_type_name(PGL_MSG_ADMIN_ROWS), "ADMIN_ROWS");
	ck_assert_str_eq(wire_type_name(PGL_MSG_ADMIN_DONE), "ADMIN_DONE");
	ck_assert_str_eq(wire_type_name(0), "unknown");
	ck_assert_str_eq(wire_type_name(11), "unknown");
	ck_assert_str_eq(wire_admin_cmd_name(WIRE_ADMIN_PAUSE), "pause");
	ck_assert_str_eq(wire_admin_cmd_name(WIRE_ADMIN_SHOW_LEASES), "show leases");
	ck_assert_str_eq(wire_admin_cmd_name(WIRE_ADMIN_DRAIN), "drain");
	ck_assert_str_eq(wire_admin_cmd_name(0), "unknown");
	ck_assert_str_eq(wire_admin_cmd_name(WIRE_ADMIN_CMD_MAX + 1), "unknown");
	ck_assert_str_eq(wire_type_name(0xffff), "unknown");

	ck_assert_str_eq(wire_release_state_name(WIRE_RELEASE_CLEAN), "clean");
	ck_assert_str_eq(wire_release_state_name(WIRE_RELEASE_IN_TRANSACTION), "in_transaction");
	ck_assert_str_eq(wire_release_state_name(WIRE_RELEASE_BROKEN), "broken");
	ck_assert_str_eq(wire_release_state_name(4), "unknown");
	ck_assert_str_eq(wire_release_state_name(0xff), "unknown");
}
END_TEST

static Suite *
wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("round_trip");

	tcase_add_loop_test(tc, test_round_trip, 0, NSAMPLES);
	tcase_add_test(tc, test_golden_bytes);
	tcase_add_test(tc, test_accepted_limits);
	tcase_add_test(tc, test_largest_grant);
	suite_add_tcase(s, tc);

	tc = tcase_create("decode_rejects");
	tcase_add_loop_test(tc, test_truncated, 0, NSAMPLES);
	tcase_add_loop_test(tc, test_payload_len_mismatch, 0, NSAMPLES);
	tcase_add_loop_test(tc, test_trailing_bytes, 0, NSAMPLES);
	tcase_add_loop_test(tc, test_header_flags, 0, NSAMPLES);
	tcase_add_test(tc, test_unknown_type);
	tcase_add_test(tc, test_string_too_long);
	tcase_add_test(tc, test_string_with_nul);
	tcase_add_loop_test(tc, test_grant_params, 0,
			    (int)(sizeof(params_cases) / sizeof(params_cases[0])));
	tcase_add_test(tc, test_grant_params_too_long);
	tcase_add_test(tc, test_release_state);
	tcase_add_test(tc, test_acquire_timeout);
	tcase_add_test(tc, test_hello_versions);
	tcase_add_test(tc, test_message_too_long);
	tcase_add_test(tc, test_admin_command_cmd);
	tcase_add_loop_test(tc, test_admin_rows, 0,
			    (int)(sizeof(rows_cases) / sizeof(rows_cases[0])));
	tcase_add_test(tc, test_admin_rows_too_long);
	suite_add_tcase(s, tc);

	tc = tcase_create("encode_rejects");
	tcase_add_test(tc, test_encode_field_too_long);
	tcase_add_loop_test(tc, test_encode_buffer_too_small, 0, NSAMPLES);
	suite_add_tcase(s, tc);

	tc = tcase_create("helpers");
	tcase_add_test(tc, test_wire_param);
	tcase_add_test(tc, test_lease_incarnation);
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run_suite(wire_suite());
}
