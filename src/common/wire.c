/*
 * wire.c - encode and decode control-protocol messages.
 *
 * The decoder is the broker's first contact with untrusted bytes: every read
 * goes through struct cursor, which checks the remaining length first, and a
 * message is accepted only when its payload is consumed exactly.
 */
#include "autoconf.h"

#include "common/wire.h"

#include <string.h>

/* --- writing ------------------------------------------------------------ */

struct writer {
	uint8_t *p;
	size_t left;
	bool ok;
};

static void
put_bytes(struct writer *w, const void *src, size_t n)
{
	if (!w->ok || n > w->left) {
		w->ok = false;
		return;
	}
	if (n == 0)
		return;		/* src may be NULL */
	memcpy(w->p, src, n);
	w->p += n;
	w->left -= n;
}

static void
put_u8(struct writer *w, uint8_t v)
{
	put_bytes(w, &v, 1);
}

static void
put_u16(struct writer *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	put_bytes(w, b, sizeof(b));
}

static void
put_u32(struct writer *w, uint32_t v)
{
	uint8_t b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put_bytes(w, b, sizeof(b));
}

static void
put_u64(struct writer *w, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put_bytes(w, b, sizeof(b));
}

static void
put_str(struct writer *w, const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n > max) {
		w->ok = false;
		return;
	}
	put_u16(w, (uint16_t)n);
	put_bytes(w, s, n);
}

size_t
wire_encode(const struct wire_msg *m, uint8_t *buf, size_t cap)
{
	struct writer w = { .p = buf, .left = cap, .ok = true };

	put_u16(&w, m->h.type);
	put_u16(&w, 0);
	put_u32(&w, 0);		/* payload length, filled in below */
	put_u64(&w, m->h.request_id);

	switch (m->h.type) {
	case PGL_MSG_SESSION_HELLO:
		put_u16(&w, m->u.hello.version_min);
		put_u16(&w, m->u.hello.version_max);
		put_u32(&w, m->u.hello.pid);
		break;
	case PGL_MSG_SESSION_WELCOME:
		put_u16(&w, m->u.welcome.version);
		put_u32(&w, m->u.welcome.broker_pid);
		put_u32(&w, m->u.welcome.incarnation);
		put_str(&w, m->u.welcome.shm_name, WIRE_SHM_NAME_MAX);
		if (m->u.welcome.version >= 2)
			put_u32(&w, m->u.welcome.acquire_timeout_ms);
		break;
	case PGL_MSG_LEASE_ACQUIRE:
		put_str(&w, m->u.acquire.pool, WIRE_POOL_NAME_MAX);
		put_u32(&w, (uint32_t)m->u.acquire.timeout_ms);
		break;
	case PGL_MSG_LEASE_GRANT:
		put_u64(&w, m->u.grant.lease_id);
		put_u32(&w, m->u.grant.slot);
		put_u32(&w, m->u.grant.backend_pid);
		put_str(&w, m->u.grant.user, WIRE_NAME_MAX);
		put_str(&w, m->u.grant.database, WIRE_NAME_MAX);
		if (m->u.grant.params_len > WIRE_PARAMS_MAX)
			return 0;
		put_u16(&w, m->u.grant.params_len);
		put_bytes(&w, m->u.grant.params, m->u.grant.params_len);
		break;
	case PGL_MSG_LEASE_RELEASE:
		put_u64(&w, m->u.release.lease_id);
		put_u8(&w, m->u.release.state);
		break;
	case PGL_MSG_LEASE_CANCEL:
		put_u64(&w, m->u.cancel.lease_id);
		break;
	case PGL_MSG_SESSION_ERROR:
		put_u16(&w, m->u.error.code);
		put_str(&w, m->u.error.message, WIRE_TEXT_MAX);
		break;
	case PGL_MSG_ADMIN_COMMAND:
		put_u16(&w, m->u.admin.cmd);
		put_u32(&w, m->u.admin.timeout_ms);
		put_u64(&w, m->u.admin.id);
		put_str(&w, m->u.admin.target, WIRE_POOL_NAME_MAX);
		break;
	case PGL_MSG_ADMIN_ROWS:
		if (m->u.rows.len > WIRE_ROWS_MAX)
			return 0;
		put_u16(&w, m->u.rows.len);
		put_bytes(&w, m->u.rows.block, m->u.rows.len);
		break;
	case PGL_MSG_ADMIN_DONE:
		put_str(&w, m->u.done.message, WIRE_TEXT_MAX);
		break;
	default:
		return 0;
	}
	if (!w.ok)
		return 0;

	size_t len = cap - w.left;
	uint32_t payload = (uint32_t)(len - WIRE_HEADER_SIZE);
	for (int i = 0; i < 4; i++)
		buf[4 + i] = (uint8_t)(payload >> (8 * i));
	return len;
}

/* --- reading ------------------------------------------------------------ */

struct cursor {
	const uint8_t *p;
	size_t left;
	const char *why;	/* first problem; NULL while all is well */
};

static bool
take(struct cursor *c, size_t n, const char *what)
{
	if (c->why != NULL)
		return false;
	if (n > c->left) {
		c->why = what;
		return false;
	}
	return true;
}

static uint8_t
get_u8(struct cursor *c)
{
	if (!take(c, 1, "message truncated"))
		return 0;
	c->left--;
	return *c->p++;
}

static uint16_t
get_u16(struct cursor *c)
{
	if (!take(c, 2, "message truncated"))
		return 0;
	uint16_t v = (uint16_t)(c->p[0] | c->p[1] << 8);
	c->p += 2;
	c->left -= 2;
	return v;
}

static uint32_t
get_u32(struct cursor *c)
{
	if (!take(c, 4, "message truncated"))
		return 0;
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)c->p[i] << (8 * i);
	c->p += 4;
	c->left -= 4;
	return v;
}

static uint64_t
get_u64(struct cursor *c)
{
	if (!take(c, 8, "message truncated"))
		return 0;
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)c->p[i] << (8 * i);
	c->p += 8;
	c->left -= 8;
	return v;
}

/* A string of at most max bytes, without NUL bytes, copied into dst[max + 1]. */
static void
get_str(struct cursor *c, char *dst, size_t max, const char *too_long)
{
	uint16_t n = get_u16(c);

	dst[0] = '\0';
	if (c->why != NULL)
		return;
	if (n > max) {
		c->why = too_long;
		return;
	}
	if (!take(c, n, "message truncated"))
		return;
	if (memchr(c->p, '\0', n) != NULL) {
		c->why = "string contains a NUL byte";
		return;
	}
	memcpy(dst, c->p, n);
	dst[n] = '\0';
	c->p += n;
	c->left -= n;
}

/* A parameter block is a whole number of "name\0value\0" pairs, names non-empty. */
static bool
params_valid(const char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const char *name_end = memchr(p + i, '\0', len - i);
		if (name_end == NULL || name_end == p + i)
			return false;
		i = (size_t)(name_end - p) + 1;
		const char *value_end = memchr(p + i, '\0', len - i);
		if (value_end == NULL)
			return false;
		i = (size_t)(value_end - p) + 1;
	}
	return true;
}

int
wire_decode(const uint8_t *buf, size_t len, struct wire_msg *m, const char **why)
{
	struct cursor c = { .p = buf, .left = len };

	if (len < WIRE_HEADER_SIZE) {
		*why = "message shorter than the header";
		return -1;
	}
	if (len > WIRE_MESSAGE_MAX) {
		*why = "message too long";
		return -1;
	}
	m->h.type = get_u16(&c);
	m->h.flags = get_u16(&c);
	m->h.payload_len = get_u32(&c);
	m->h.request_id = get_u64(&c);
	if (m->h.flags != 0) {
		*why = "unknown header flags";
		return -1;
	}
	if (m->h.payload_len != c.left) {
		*why = "payload length does not match the message";
		return -1;
	}

	switch (m->h.type) {
	case PGL_MSG_SESSION_HELLO:
		m->u.hello.version_min = get_u16(&c);
		m->u.hello.version_max = get_u16(&c);
		m->u.hello.pid = get_u32(&c);
		if (c.why == NULL && m->u.hello.version_min > m->u.hello.version_max)
			c.why = "HELLO version range is empty";
		break;
	case PGL_MSG_SESSION_WELCOME:
		m->u.welcome.version = get_u16(&c);
		m->u.welcome.broker_pid = get_u32(&c);
		m->u.welcome.incarnation = get_u32(&c);
		get_str(&c, m->u.welcome.shm_name, WIRE_SHM_NAME_MAX, "shm name too long");
		/* The payload's shape follows the version it names. */
		m->u.welcome.acquire_timeout_ms = m->u.welcome.version >= 2 ? get_u32(&c) : 0;
		break;
	case PGL_MSG_LEASE_ACQUIRE:
		get_str(&c, m->u.acquire.pool, WIRE_POOL_NAME_MAX, "pool name too long");
		m->u.acquire.timeout_ms = (int32_t)get_u32(&c);
		if (c.why == NULL && m->u.acquire.timeout_ms < -1)
			c.why = "ACQUIRE timeout below -1";
		break;
	case PGL_MSG_LEASE_GRANT:
		m->u.grant.lease_id = get_u64(&c);
		m->u.grant.slot = get_u32(&c);
		m->u.grant.backend_pid = get_u32(&c);
		get_str(&c, m->u.grant.user, WIRE_NAME_MAX, "GRANT user name too long");
		get_str(&c, m->u.grant.database, WIRE_NAME_MAX, "GRANT database name too long");
		m->u.grant.params_len = get_u16(&c);
		m->u.grant.params = (const char *)c.p;
		if (c.why == NULL && m->u.grant.params_len > WIRE_PARAMS_MAX)
			c.why = "GRANT parameters too long";
		else if (take(&c, m->u.grant.params_len, "message truncated")) {
			if (!params_valid(m->u.grant.params, m->u.grant.params_len))
				c.why = "GRANT parameters malformed";
			c.p += m->u.grant.params_len;
			c.left -= m->u.grant.params_len;
		}
		break;
	case PGL_MSG_LEASE_RELEASE:
		m->u.release.lease_id = get_u64(&c);
		m->u.release.state = get_u8(&c);
		if (c.why == NULL && m->u.release.state > WIRE_RELEASE_BROKEN)
			c.why = "unknown RELEASE state";
		break;
	case PGL_MSG_LEASE_CANCEL:
		m->u.cancel.lease_id = get_u64(&c);
		break;
	case PGL_MSG_SESSION_ERROR:
		m->u.error.code = get_u16(&c);
		get_str(&c, m->u.error.message, WIRE_TEXT_MAX, "ERROR text too long");
		break;
	case PGL_MSG_ADMIN_COMMAND:
		m->u.admin.cmd = get_u16(&c);
		m->u.admin.timeout_ms = get_u32(&c);
		m->u.admin.id = get_u64(&c);
		get_str(&c, m->u.admin.target, WIRE_POOL_NAME_MAX, "pool name too long");
		if (c.why == NULL && (m->u.admin.cmd == 0 || m->u.admin.cmd > WIRE_ADMIN_CMD_MAX))
			c.why = "unknown admin command";
		break;
	case PGL_MSG_ADMIN_ROWS:
		m->u.rows.len = get_u16(&c);
		m->u.rows.block = (const char *)c.p;
		if (c.why == NULL && m->u.rows.len > WIRE_ROWS_MAX)
			c.why = "ROWS block too long";
		else if (take(&c, m->u.rows.len, "message truncated")) {
			if (!wire_rows_valid(m->u.rows.block, m->u.rows.len))
				c.why = "ROWS block malformed";
			c.p += m->u.rows.len;
			c.left -= m->u.rows.len;
		}
		break;
	case PGL_MSG_ADMIN_DONE:
		get_str(&c, m->u.done.message, WIRE_TEXT_MAX, "DONE text too long");
		break;
	default:
		*why = "unknown message type";
		return -1;
	}
	if (c.why == NULL && c.left != 0)
		c.why = "trailing bytes after the payload";
	if (c.why != NULL) {
		*why = c.why;
		return -1;
	}
	return 0;
}

const char *
wire_type_name(uint16_t type)
{
	static const char *const names[] = {
		[PGL_MSG_SESSION_HELLO] = "HELLO",
		[PGL_MSG_SESSION_WELCOME] = "WELCOME",
		[PGL_MSG_LEASE_ACQUIRE] = "ACQUIRE",
		[PGL_MSG_LEASE_GRANT] = "GRANT",
		[PGL_MSG_LEASE_RELEASE] = "RELEASE",
		[PGL_MSG_LEASE_CANCEL] = "CANCEL",
		[PGL_MSG_SESSION_ERROR] = "ERROR",
		[PGL_MSG_ADMIN_COMMAND] = "ADMIN_COMMAND",
		[PGL_MSG_ADMIN_ROWS] = "ADMIN_ROWS",
		[PGL_MSG_ADMIN_DONE] = "ADMIN_DONE",
	};

	if (type < sizeof(names) / sizeof(names[0]) && names[type] != NULL)
		return names[type];
	return "unknown";
}

const char *
wire_release_state_name(uint8_t state)
{
	static const char *const names[] = {
		[WIRE_RELEASE_CLEAN] = "clean",
		[WIRE_RELEASE_IN_TRANSACTION] = "in_transaction",
		[WIRE_RELEASE_UNKNOWN] = "unknown",
		[WIRE_RELEASE_BROKEN] = "broken",
	};

	return state < sizeof(names) / sizeof(names[0]) ? names[state] : "unknown";
}

const char *
wire_param(const char *params, size_t len, const char *name)
{
	size_t i = 0;

	while (i < len) {
		const char *n = params + i;
		size_t nlen = strlen(n);
		const char *v = n + nlen + 1;

		if (strcmp(n, name) == 0)
			return v;
		i += nlen + 1 + strlen(v) + 1;
	}
	return NULL;
}

bool
wire_rows_valid(const char *block, size_t len)
{
	size_t i = 0;

	/* row := (name \0 value \0)* \0, names non-empty; the block ends a row */
	while (i < len) {
		const char *end = memchr(block + i, '\0', len - i);
		if (end == NULL)
			return false;
		if (end == block + i) {		/* the end of a row */
			i++;
			continue;
		}
		i = (size_t)(end - block) + 1;
		end = memchr(block + i, '\0', len - i);
		if (end == NULL || end == block + i)	/* a value is never empty */
			return false;
		i = (size_t)(end - block) + 1;
		if (i == len)
			return false;		/* a row without its end */
	}
	return true;
}

const char *
wire_admin_cmd_name(uint16_t cmd)
{
	static const char *const names[] = {
		[WIRE_ADMIN_SHOW_POOLS] = "show pools",
		[WIRE_ADMIN_SHOW_CLIENTS] = "show clients",
		[WIRE_ADMIN_SHOW_LEASES] = "show leases",
		[WIRE_ADMIN_PAUSE] = "pause",
		[WIRE_ADMIN_RESUME] = "resume",
		[WIRE_ADMIN_RECONNECT] = "reconnect",
		[WIRE_ADMIN_KILL_LEASE] = "kill-lease",
		[WIRE_ADMIN_KILL_CLIENT] = "kill-client",
		[WIRE_ADMIN_RELOAD] = "reload",
		[WIRE_ADMIN_DRAIN] = "drain",
	};

	if (cmd < sizeof(names) / sizeof(names[0]) && names[cmd] != NULL)
		return names[cmd];
	return "unknown";
}
