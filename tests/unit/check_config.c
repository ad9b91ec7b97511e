/*
 * check_config.c - configuration loading and validation, through the library
 * (config_load) and through the command line (pgleased --check-config).
 */
#include "autoconf.h"

#include "broker/config.h"
#include "broker/conninfo.h"
#include "common/log.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#define SECRET "Sup3rSecret"
#define PGLEASED TOP_BUILDDIR "/pgleased"

/* Line 1: the broker.  Lines 2-4: the start of a pool.  A test's own lines follow. */
#define BROKER "broker = { socket = \"/tmp/pglease-unit.sock\"; shm_name = \"/pglease.unit\"; };\n"
#define POOL "pools = ( {\n  name = \"main\";\n  conninfo = \"host=/tmp dbname=app\";\n"
#define END "} );\n"

struct output {
	int status;
	char text[16384];
};

/* pgleased --check-config -c <file holding text>; the file's path in *path. */
static void
check_config_file(const char *text, struct output *out, char *path, size_t pathlen)
{
	snprintf(path, pathlen, "%s", testutil_write_file("pglease.conf", text));
	char *argv[] = { (char *)PGLEASED, (char *)"--check-config", (char *)"-c", path, NULL };
	out->status = testutil_run(argv, out->text, sizeof(out->text));
}

struct bad_case {
	const char *text;
	const char *where;	/* "LINE: setting": expected after "FILE:" */
	const char *says;	/* a phrase of the problem */
};

static const struct bad_case bad_cases[] = {
	{ BROKER POOL "  max_size = = 4;\n" END, "5: syntax", "syntax error" },
	{ BROKER POOL "  max_sise = 4;\n" END, "5: pools[0].max_sise", "did you mean \"max_size\"" },
	{ BROKER "brokers = 1;\n" POOL END, "2: brokers", "unknown setting" },
	{ BROKER POOL "  max_size = \"twenty\";\n" END, "5: pools[0].max_size", "must be an integer" },
	{ BROKER POOL "  min_size = 8;\n  max_size = 4;\n" END, "5: pools[0].min_size", "larger than max_size" },
	{ BROKER POOL "  max_size = 0;\n" END, "5: pools[0].max_size", "between 1 and" },
	{ BROKER POOL "  min_size = -1;\n" END, "5: pools[0].min_size", "between 0 and" },
	{ BROKER POOL "  max_size = 3000000000;\n" END, "5: pools[0].max_size", "(got 3000000000)" },
	{ BROKER POOL "  max_size = 99999999999999999999;\n" END, "5: pools[0].max_size", "out of range" },
	{ BROKER POOL "  connect_timeout = -1.5;\n" END, "5: pools[0].connect_timeout", "between 0 and" },
	{ BROKER POOL "  idle_timeout = -3;\n" END, "5: pools[0].idle_timeout", "between 0 and" },
	{ BROKER POOL "  acquire_timeout = \"5s\";\n" END, "5: pools[0].acquire_timeout", "must be a number of seconds" },
	{ BROKER POOL "  statement_timeout = 3000000.0;\n" END, "5: pools[0].statement_timeout", "between 0 and 2147483" },
	{ BROKER POOL "  jitter = 1.0;\n" END, "5: pools[0].jitter", "less than 1" },
	{ BROKER POOL "  jitter = -0.1;\n" END, "5: pools[0].jitter", "at least 0" },
	{ BROKER POOL "  initial_backoff = 0;\n" END, "5: pools[0].initial_backoff", "greater than 0" },
	{ BROKER POOL "  reset_query = \"\";\n" END, "5: pools[0].reset_query", "must not be empty" },
	{ BROKER POOL "  health_query = \"SELECT '" 
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789'\";\n" END,
	  "5: pools[0].health_query", "at most 1024" },
	{ BROKER POOL "  lease_timeout_action = \"kill\";\n" END, "5: pools[0].lease_timeout_action", "\"warn\", \"terminate\"" },
	{ BROKER POOL "  reset_check = \"select\";\n" END, "5: pools[0].reset_check", "\"function\", \"query\"" },
	{ BROKER POOL "  reset_check = 1;\n" END, "5: pools[0].reset_check", "must be a string" },
	{ BROKER POOL "  initial_backoff = 10.0;\n  max_backoff = 5.0;\n" END, "5: pools[0].initial_backoff", "larger than max_backoff" },
#define BROKER_WITH(x) "broker = { socket = \"/tmp/pglease-unit.sock\"; " x " };\n"
	{ BROKER_WITH("log_target = \"file\";") POOL END, "1: broker.log_target", "needs log_file" },
	{ BROKER_WITH("log_target = \"file\"; log_file = \"pgl.log\";") POOL END, "1: broker.log_file",
	  "not an absolute path" },
	{ BROKER_WITH("log_target = \"journal\";") POOL END, "1: broker.log_target", "\"file\"" },
	{ BROKER_WITH("syslog_facility = \"local8\";") POOL END, "1: broker.syslog_facility",
	  "\"local7\"" },
	{ BROKER_WITH("syslog_facility = 3;") POOL END, "1: broker.syslog_facility", "must be a string" },
	{ BROKER_WITH("syslog_ident = \"\";") POOL END, "1: broker.syslog_ident", "empty" },
	{ BROKER_WITH("pid_file = \"run/pgleased.pid\";") POOL END, "1: broker.pid_file",
	  "not an absolute path" },
	{ BROKER POOL END "pools2 = ();\n", "6: pools2", "unknown setting" },
	{ BROKER POOL "} , {\n  name = \"main\";\n  conninfo = \"dbname=x\";\n" END,
	  "6: pools[1].name", "already defined at line" },
	{ BROKER "pools = ( { name = \"\"; conninfo = \"dbname=x\"; } );\n", "2: pools[0].name", "must not be empty" },
	{ BROKER "pools = ( { name = \"a b\"; conninfo = \"dbname=x\"; } );\n", "2: pools[0].name", "is not a pool name" },
	{ BROKER "pools = ( { name = \"main\"; } );\n", "2: pools[0].conninfo", "missing" },
	{ BROKER, "pools", "at least one pool" },
	{ BROKER "pools = ( );\n", "2: pools", "at least one pool" },
	{ "broker = {\n  socket = \"/tmp/" "0123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789.sock\";\n};\n" POOL END, "2: broker.socket", "at most 107" },
	{ "broker = {\n  socket_mode = 0660;\n};\n" POOL END, "2: broker.socket_mode", "octal strings: write \"0660\"" },
	{ "broker = {\n  socket_mode = \"0999\";\n};\n" POOL END, "2: broker.socket_mode", "not an octal file mode" },
	/* issue 9 item 4: a writable segment lets anyone take the broker's lock */
	{ "broker = {\n  shm_mode = \"0660\";\n};\n" POOL END, "2: broker.shm_mode", "bits 0020, which are refused" },
	{ "broker = {\n  shm_mode = \"0646\";\n};\n" POOL END, "2: broker.shm_mode", "bits 0002" },
	{ "broker = {\n  shm_mode = \"07777\";\n};\n" POOL END, "2: broker.shm_mode", "bits 7022" },
	{ "broker = {\n  shm_mode = \"04640\";\n};\n" POOL END, "2: broker.shm_mode", "setuid" },
	{ "broker = {\n  socket_mode = \"0770\";\n};\n" POOL END, "2: broker.socket_mode", "bits 0110" },
	{ "broker = {\n  socket_mode = \"01660\";\n};\n" POOL END, "2: broker.socket_mode", "sticky" },
	{ "broker = {\n  shm_name = \"pglease\";\n};\n" POOL END, "2: broker.shm_name", "not a shared memory name" },
	{ "broker = {\n  log_level = \"loud\";\n};\n" POOL END, "2: broker.log_level", "not one of" },
	{ "broker = {\n  allowed_uids = [ \"no-such-user-here\" ];\n};\n" POOL END, "2: broker.allowed_uids", "no such user" },
	{ "broker = {\n  allowed_gids = [ -4 ];\n};\n" POOL END, "2: broker.allowed_gids", "out of range" },
	{ "broker = {\n  socket_group = \"no-such-group-here\";\n};\n" POOL END, "2: broker.socket_group", "no such group" },
	{ "broker = {\n  shm_group = \"no-such-group-here\";\n};\n" POOL END, "2: broker.shm_group", "no such group" },
	{ "broker = {\n  shm_mode = \"0600\";\n  shm_group = \"0\";\n};\n" POOL END, "3: broker.shm_group", "gives the group no read permission" },
	{ "broker = {\n  max_total_slots = 3;\n};\n" POOL END, "2: broker.max_total_slots", "less than the pools' max_size total of 20" },
	{ "broker = {\n  max_clients = 0;\n};\n" POOL END, "2: broker.max_clients", "between 1 and" },
	{ BROKER "pools = ( {\n  name = \"main\";\n  conninfo = \"host=/tmp dbname=app nonsense=1\";\n" END,
	  "4: pools[0].conninfo", "invalid connection option \"nonsense\"" },
	{ BROKER "pools = ( {\n  name = \"main\";\n  conninfo = \"host=/tmp password=" SECRET " sslmode=prefer\";\n" END,
	  "4: pools[0].conninfo", "a leased socket cannot carry TLS state" },
	{ BROKER "pools = ( {\n  name = \"main\";\n  conninfo = \"dbname=app sslmode=require\";\n" END,
	  "4: pools[0].conninfo", "sslmode=require asks for TLS" },
	{ BROKER "pools = ( {\n  name = \"main\";\n  conninfo = \"host=/a,/b port=1,2 "
	  "target_session_attrs=master\";\n" END,
	  "4: pools[0].conninfo", "target_session_attrs=master is not one libpq takes" },
	{ BROKER "pools = ( {\n  name = \"main\";\n  conninfo = \"dbname=app gssencmode=prefer\";\n" END,
	  "4: pools[0].conninfo", "gssencmode=prefer asks for GSSAPI encryption" },
	{ BROKER "pools = ( {\n  name = \"main\";\n  conninfo = \"postgresql://app:" SECRET "@[::1/app\";\n" END,
	  "4: pools[0].conninfo", "cannot be parsed" },
	{ BROKER "pools = ( {\n  name = \"main\";\n  conninfo = \"password = '" SECRET "' host\";\n" END,
	  "4: pools[0].conninfo", "cannot be parsed" },
	{ BROKER POOL "  password_file = \"/nonexistent/app.password\";\n" END,
	  "5: pools[0].password_file", "No such file or directory" },
};

/* Each bad file: exit 1, "FILE:LINE: setting: problem", and never the secret. */
START_TEST(test_bad_file)
{
	const struct bad_case *c = &bad_cases[_i];
	struct output out;
	char path[512], expect[700];

	check_config_file(c->text, &out, path, sizeof(path));
	ck_assert_msg(out.status == 1, "case %d: exit %d, output:\n%s", _i, out.status, out.text);
	if (strchr(c->where, ':') != NULL)
		snprintf(expect, sizeof(expect), "%s:%s: ", path, c->where);
	else
		snprintf(expect, sizeof(expect), "%s: %s: ", path, c->where);
	ck_assert_msg(strstr(out.text, expect) != NULL, "case %d: no \"%s\" in:\n%s", _i,
		      expect, out.text);
	ck_assert_msg(strstr(out.text, c->says) != NULL, "case %d: no \"%s\" in:\n%s", _i,
		      c->says, out.text);
	ck_assert_msg(strstr(out.text, SECRET) == NULL, "case %d: the secret leaked:\n%s", _i,
		      out.text);
	ck_assert_msg(strstr(out.text, "configuration is not valid") != NULL,
		      "case %d: no summary line:\n%s", _i, out.text);
}
END_TEST

START_TEST(test_every_error_reported)
{
	struct output out;
	char path[512], expect[600];

	check_config_file(BROKER POOL "  max_sise = 4;\n  jitter = 2.0;\n  min_size = \"x\";\n"
			  "  socket_mode = \"0660\";\n" END, &out, path, sizeof(path));
	ck_assert_int_eq(out.status, 1);
	static const char *const where[] = {
		"5: pools[0].max_sise", "6: pools[0].jitter", "7: pools[0].min_size",
		"8: pools[0].socket_mode",
	};
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		snprintf(expect, sizeof(expect), "%s:%s: ", path, where[i]);
		ck_assert_msg(strstr(out.text, expect) != NULL, "no \"%s\" in:\n%s", expect, out.text);
	}
	ck_assert_msg(strstr(out.text, ": 4 errors, 0 warnings:") != NULL, "%s", out.text);
}
END_TEST

START_TEST(test_missing_file)
{
	char out[2048];
	char *argv[] = { (char *)PGLEASED, (char *)"-t", (char *)"-c",
			 (char *)"/nonexistent/pglease.conf", NULL };

	ck_assert_int_eq(testutil_run(argv, out, sizeof(out)), 1);
	ck_assert_msg(strstr(out, "/nonexistent/pglease.conf: file: cannot open: No such file")
		      != NULL, "%s", out);
}
END_TEST

START_TEST(test_good_file)
{
	const char *text =
		"broker = {\n"
		"  socket = \"/tmp/x.sock\"; socket_mode = \"0600\"; shm_name = \"/pglease.t\";\n"
		"  shm_mode = \"644\"; log_level = \"debug\"; log_target = \"syslog\";\n"
		"  allowed_uids = ( 0, \"root\" ); allowed_gids = [ 0 ];\n"
		"  shutdown_timeout = 2; max_clients = 10; max_leases_per_client = 2;\n"
		"};\n"
		"pools = ( {\n"
		"  name = \"main\"; conninfo = \"host=/tmp,127.0.0.1 dbname=app user=app\";\n"
		"  min_size = 1; max_size = 3000000000L;\n"
		"}, {\n"
		"  name = \"ro.2\"; conninfo = \"postgresql:///ro\"; max_size = 2;\n"
		"  connect_timeout = 0.25; statement_timeout = 30; validate_after = 0;\n"
		"  jitter = 0.0; lease_timeout_action = \"terminate\"; reset_check = \"query\";\n"
		"} );\n";
	int nerrors = -1;
	struct config *cfg;

	/* max_size written as a 64-bit literal is still range-checked */
	cfg = config_load(testutil_write_file("good.conf", text), NULL, NULL, &nerrors);
	ck_assert_ptr_null(cfg);
	ck_assert_int_eq(nerrors, 1);

	char *fixed = strdup(text);
	char *p = strstr(fixed, "3000000000L");
	memcpy(p, "3          ", 11);
	cfg = config_load(testutil_write_file("good.conf", fixed), NULL, NULL, &nerrors);
	free(fixed);
	ck_assert_int_eq(nerrors, 0);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(cfg->broker.socket, "/tmp/x.sock");
	ck_assert_int_eq(cfg->broker.socket_mode, 0600);
	ck_assert_int_eq(cfg->broker.shm_mode, 0644);
	ck_assert_int_eq(cfg->broker.log_level, 3);
	ck_assert_int_eq(cfg->broker.log_target, CONFIG_LOG_SYSLOG);
	ck_assert_uint_eq(cfg->broker.n_allowed_uids, 2);
	ck_assert_uint_eq(cfg->broker.allowed_uids[1], 0);
	ck_assert_uint_eq(cfg->broker.n_allowed_gids, 1);
	ck_assert_double_eq(cfg->broker.shutdown_timeout, 2.0);
	ck_assert_int_eq(cfg->broker.max_clients, 10);
	ck_assert_int_eq(cfg->broker.max_total_slots, 10);	/* 2 x (3 + 2) */
	ck_assert_uint_eq(cfg->npools, 2);

	const struct pool_config *m = config_find_pool(cfg, "main");
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(m->min_size, 1);
	ck_assert_int_eq(m->max_size, 3);
	ck_assert_double_eq(m->connect_timeout, 10.0);		/* defaults */
	ck_assert_double_eq(m->acquire_timeout, 5.0);
	ck_assert_ptr_null(m->reset_query);	/* DISCARD ALL alone */
	ck_assert_str_eq(m->health_query, "SELECT 1");
	ck_assert_double_eq(m->jitter, 0.2);
	ck_assert_int_eq(m->lease_timeout_action, LEASE_TIMEOUT_WARN);
	ck_assert_int_eq(m->reset_check, RESET_CHECK_FUNCTION);
	ck_assert_ptr_null(m->password);

	const struct pool_config *r = config_find_pool(cfg, "ro.2");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->min_size, 2);	/* default 5, lowered to max_size */
	ck_assert_double_eq(r->connect_timeout, 0.25);
	ck_assert_double_eq(r->statement_timeout, 30.0);
	ck_assert_double_eq(r->validate_after, 0.0);
	ck_assert_double_eq(r->jitter, 0.0);
	ck_assert_int_eq(r->lease_timeout_action, LEASE_TIMEOUT_TERMINATE);
	ck_assert_int_eq(r->reset_check, RESET_CHECK_QUERY);
	ck_assert_ptr_null(config_find_pool(cfg, "nope"));
	config_free(cfg);
}
END_TEST

START_TEST(test_defaults_and_empty_ids)
{
	int nerrors = -1;
	struct config *cfg = config_load(testutil_write_file("min.conf", POOL END), NULL, NULL,
					 &nerrors);

	ck_assert_int_eq(nerrors, 0);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(cfg->broker.socket, "/run/pglease/pglease.sock");
	ck_assert_int_eq(cfg->broker.socket_mode, 0660);
	ck_assert_str_eq(cfg->broker.shm_name, "/pglease.main");
	ck_assert_int_eq(cfg->broker.shm_mode, 0640);
	ck_assert_uint_eq(cfg->broker.n_allowed_uids, 0);	/* own uid only */
	ck_assert_uint_eq(cfg->broker.n_allowed_gids, 0);
	ck_assert_int_eq(cfg->broker.max_leases_per_client, 4);
	ck_assert_int_eq(cfg->broker.max_total_slots, 40);
	ck_assert_int_eq(cfg->pools[0].min_size, 5);
	ck_assert_int_eq(cfg->pools[0].max_size, 20);
	ck_assert_double_eq(cfg->pools[0].statement_timeout, 30.0);
	config_free(cfg);
}
END_TEST

struct warnings {
	char text[4096];
	int n;
};

static void
collect(void *arg, bool is_error, const char *msg)
{
	struct warnings *w = arg;

	if (!is_error)
		w->n++;
	strncat(w->text, msg, sizeof(w->text) - strlen(w->text) - 2);
	strcat(w->text, "\n");
}

/* Issue 16: a pool's own lists; empty ones let nobody in, which is said. */
START_TEST(test_pool_allow_lists)
{
	struct warnings w = { .n = 0 };
	int nerrors = -1;
	struct config *cfg = config_load(testutil_write_file("tenants.conf",
		"broker = { allowed_uids = [ 0, 1001 ]; };\n"
		"pools = ( { name = \"a\"; conninfo = \"dbname=a\"; allowed_uids = [ 1001 ];\n"
		"            allowed_gids = [ 0 ]; },\n"
		"          { name = \"b\"; conninfo = \"dbname=b\"; },\n"
		"          { name = \"c\"; conninfo = \"dbname=c\";\n"
		"            allowed_uids = [ ]; } );\n"), collect, &w, &nerrors);

	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_eq(nerrors, 0);
	const struct pool_config *a = config_find_pool(cfg, "a");
	ck_assert(a->restricted);
	ck_assert_uint_eq(a->n_allowed_uids, 1);
	ck_assert_uint_eq(a->allowed_uids[0], 1001);
	ck_assert_uint_eq(a->n_allowed_gids, 1);
	ck_assert(!config_find_pool(cfg, "b")->restricted);
	ck_assert(config_find_pool(cfg, "c")->restricted);
	ck_assert_int_eq(w.n, 1);
	ck_assert_msg(strstr(w.text, ":6: pools[2].allowed_uids: warning: the pool's lists are "
			     "empty: nobody may lease from it") != NULL, "%s", w.text);
	config_free(cfg);
}
END_TEST

START_TEST(test_host_name_warns)
{
	struct warnings w = { .n = 0 };
	int nerrors = -1;
	struct config *cfg = config_load(testutil_write_file("host.conf",
		"pools = ( {\n  name = \"main\";\n"
		"  conninfo = \"host=db.example.com,/tmp,::1 dbname=app connect_timeout=3\";\n"
		"} );\n"), collect, &w, &nerrors);

	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_eq(nerrors, 0);
	ck_assert_int_eq(w.n, 2);
	ck_assert_msg(strstr(w.text, ":3: pools[0].conninfo: warning: host \"db.example.com\" is a name")
		      != NULL, "%s", w.text);
	ck_assert_msg(strstr(w.text, "connect_timeout in the conninfo is ignored") != NULL,
		      "%s", w.text);
	config_free(cfg);

	/* hostaddr given: libpq does not look the name up */
	memset(&w, 0, sizeof(w));
	cfg = config_load(testutil_write_file("host.conf",
		"pools = ( { name = \"main\"; conninfo = \"host=db.example.com hostaddr=10.0.0.1\"; } );\n"),
		collect, &w, &nerrors);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_eq(w.n, 0);
	config_free(cfg);
}
END_TEST

START_TEST(test_password_file)
{
	char pwpath[512], conf[1024];
	struct output out;
	char path[512];

	snprintf(pwpath, sizeof(pwpath), "%s", testutil_write_file("app.password", SECRET "\n"));
	snprintf(conf, sizeof(conf), BROKER POOL "  password_file = \"%s\";\n" END, pwpath);

	/* group-readable: refused */
	ck_assert_int_eq(chmod(pwpath, 0640), 0);
	check_config_file(conf, &out, path, sizeof(path));
	ck_assert_int_eq(out.status, 1);
	ck_assert_msg(strstr(out.text, ":5: pools[0].password_file: ") != NULL, "%s", out.text);
	ck_assert_msg(strstr(out.text, "chmod 0600") != NULL, "%s", out.text);
	ck_assert_ptr_null(strstr(out.text, SECRET));

	/* private: accepted, read, never printed */
	ck_assert_int_eq(chmod(pwpath, 0600), 0);
	check_config_file(conf, &out, path, sizeof(path));
	ck_assert_msg(out.status == 0, "%s", out.text);
	ck_assert_ptr_null(strstr(out.text, SECRET));

	int nerrors;
	struct config *cfg = config_load(path, NULL, NULL, &nerrors);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(cfg->pools[0].password, SECRET);
	config_free(cfg);

	/* empty: refused */
	testutil_write_file("app.password", "\n");
	check_config_file(conf, &out, path, sizeof(path));
	ck_assert_int_eq(out.status, 1);
	ck_assert_msg(strstr(out.text, "is empty") != NULL, "%s", out.text);

	/* and a password in the conninfo as well: refused, not shown */
	testutil_write_file("app.password", SECRET "\n");
	snprintf(conf, sizeof(conf), "pools = ( {\n name = \"main\";\n password_file = \"%s\";\n"
		 " conninfo = \"dbname=app password=%s\";\n} );\n", pwpath, SECRET);
	check_config_file(conf, &out, path, sizeof(path));
	ck_assert_int_eq(out.status, 1);
	ck_assert_msg(strstr(out.text, ":4: pools[0].conninfo: ") != NULL, "%s", out.text);
	ck_assert_ptr_null(strstr(out.text, SECRET));
}
END_TEST

START_TEST(test_conninfo_password_masked)
{
	struct output out;
	char path[512];

	/* a socket under /tmp: --check-config wants its directory to exist */
	check_config_file(BROKER "pools = ( {\n  name = \"main\";\n"
			  "  conninfo = \"host=/tmp user=app password='" SECRET "'\";\n" END,
			  &out, path, sizeof(path));
	ck_assert_msg(out.status == 0, "%s", out.text);
	ck_assert_ptr_null(strstr(out.text, SECRET));
	ck_assert_msg(strstr(out.text, "password=********") != NULL, "%s", out.text);
	ck_assert_msg(strstr(out.text, "warning: carries a password") != NULL, "%s", out.text);
}
END_TEST

/* Several pools on one line: each setting is read from its own literal. */
START_TEST(test_one_line_pools)
{
	int nerrors;
	struct config *cfg = config_load(testutil_write_file("one.conf",
		"pools = ( { name = \"a\"; conninfo = \"dbname=a\"; max_size = 7; validate_after = 0; },"
		" { name = \"b\"; conninfo = \"dbname=b\"; max_size = 9; validate_after = 60; } );\n"),
		NULL, NULL, &nerrors);

	ck_assert_int_eq(nerrors, 0);
	ck_assert_int_eq(cfg->pools[0].max_size, 7);
	ck_assert_int_eq(cfg->pools[1].max_size, 9);
	ck_assert_double_eq(cfg->pools[0].validate_after, 0);
	ck_assert_double_eq(cfg->pools[1].validate_after, 60);
	config_free(cfg);

	/* the wrapped one is still caught, whichever pool it is in */
	struct output out;
	char path[512];
	check_config_file("pools = ( { name = \"a\"; conninfo = \"dbname=a\"; max_size = 7; },"
			  " { name = \"b\"; conninfo = \"dbname=b\"; max_size = 4294967303; } );\n",
			  &out, path, sizeof(path));
	ck_assert_int_eq(out.status, 1);
	ck_assert_msg(strstr(out.text, ":1: pools[1].max_size: must be between 1 and 100000 "
			     "(got 4294967303)") != NULL, "%s", out.text);
}
END_TEST

START_TEST(test_durations_int_or_float)
{
	int nerrors;
	struct config *cfg = config_load(testutil_write_file("d.conf",
		"pools = ( { name = \"a\"; conninfo = \"dbname=a\"; idle_timeout = 30;"
		" max_lifetime = 30.0; lease_timeout = 0; health_check_interval = 1e2; } );\n"),
		NULL, NULL, &nerrors);

	ck_assert_int_eq(nerrors, 0);
	ck_assert_double_eq(cfg->pools[0].idle_timeout, 30.0);
	ck_assert_double_eq(cfg->pools[0].max_lifetime, 30.0);
	ck_assert_double_eq(cfg->pools[0].lease_timeout, 0.0);
	ck_assert_double_eq(cfg->pools[0].health_check_interval, 100.0);
	config_free(cfg);
}
END_TEST

START_TEST(test_seconds_to_ms)
{
	ck_assert_int_eq(conninfo_seconds_to_ms(0), 0);
	ck_assert_int_eq(conninfo_seconds_to_ms(30), 30000);
	ck_assert_int_eq(conninfo_seconds_to_ms(1.5), 1500);
	ck_assert_int_eq(conninfo_seconds_to_ms(0.0015), 2);
	ck_assert_int_eq(conninfo_seconds_to_ms(0.0001), 1);	/* positive stays on */
	ck_assert_int_eq(conninfo_seconds_to_ms(2147483.647), 2147483647);
	ck_assert_int_eq(conninfo_seconds_to_ms(-1), 0);
}
END_TEST

START_TEST(test_backend_options)
{
	struct pool_config p = {
		.conninfo = (char *)"dbname=app options='-c search_path=app'",
		.statement_timeout = 30,
		.connection_check_interval = 1,
	};
	char buf[256];

	ck_assert_int_ge(conninfo_options(&p, false, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "-c search_path=app -c statement_timeout=30000");
	ck_assert_int_ge(conninfo_options(&p, true, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "-c search_path=app -c statement_timeout=30000 "
			 "-c client_connection_check_interval=1000");

	p.conninfo = (char *)"dbname=app";
	p.statement_timeout = 0.25;
	ck_assert_int_ge(conninfo_options(&p, false, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "-c statement_timeout=250");

	p.statement_timeout = 0;	/* off: the server's own setting stands */
	ck_assert_int_eq(conninfo_options(&p, false, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "");
	ck_assert_int_ge(conninfo_options(&p, true, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "-c client_connection_check_interval=1000");

	p.statement_timeout = 30;
	ck_assert_int_eq(conninfo_options(&p, false, buf, 10), -1);
}
END_TEST

START_TEST(test_masked_conninfo)
{
	struct pool_config p = {
		.conninfo = (char *)"postgresql://app:" SECRET "@/app?host=/tmp&application_name=a%20b",
	};
	char buf[256];

	conninfo_masked(&p, buf, sizeof(buf));
	ck_assert_ptr_null(strstr(buf, SECRET));
	ck_assert_msg(strstr(buf, "password=********") != NULL, "%s", buf);
	ck_assert_msg(strstr(buf, "application_name='a b'") != NULL, "%s", buf);
	conninfo_masked(&p, buf, 12);
	ck_assert_uint_le(strlen(buf), 11);
	ck_assert_ptr_null(strstr(buf, SECRET));
}
END_TEST

/* A NULL-terminated keyword/value list as "k=v k=v ...". */
static void
join_params(const char *const *kw, const char *const *val, char *buf, size_t len)
{
	size_t used = 0, i;

	ck_assert_ptr_nonnull(kw);
	ck_assert_ptr_nonnull(val);
	buf[0] = '\0';
	for (i = 0; kw[i] != NULL; i++) {
		ck_assert_ptr_nonnull(val[i]);
		used += (size_t)snprintf(buf + used, len - used, "%s%s=%s", i > 0 ? " " : "",
					 kw[i], val[i]);
		ck_assert_uint_lt(used, len);
	}
	ck_assert_ptr_null(val[i]);
}

/* What a backend connects with is built at load, as it was at each connect. */
START_TEST(test_connect_params)
{
	char pwpath[512], conf[1024], buf[1024];
	char user[64], db[64], host[64], port[16];
	int nerrors;

	snprintf(pwpath, sizeof(pwpath), "%s", testutil_write_file("connect.password",
								     SECRET "\n"));
	ck_assert_int_eq(chmod(pwpath, 0600), 0);
	snprintf(conf, sizeof(conf), BROKER "pools = ( {\n  name = \"a\";\n  password_file = \"%s\";\n"
		 "  conninfo = \"host=/tmp port=5433 dbname=app user=app sslmode=disable "
		 "connect_timeout=5 options='-c search_path=app'\";\n"
		 "}, {\n  name = \"b\"; statement_timeout = 0; connection_check_interval = 0;\n"
		 "  conninfo = \"host=/tmp dbname='port=1' password=%s\";\n" END, pwpath, SECRET);
	struct config *cfg = config_load(testutil_write_file("connect.conf", conf), NULL, NULL,
					 &nerrors);
	ck_assert_ptr_nonnull(cfg);
	const struct pool_config *a = &cfg->pools[0], *b = &cfg->pools[1];

	/* the conninfo's own, in libpq's order, then the broker's; the file's password */
	join_params(conninfo_keywords(a, false), conninfo_values(a, false), buf, sizeof(buf));
	ck_assert_str_eq(buf, "user=app dbname=app host=/tmp port=5433 sslmode=disable "
			 "gssencmode=disable fallback_application_name=pgleased "
			 "options=-c search_path=app -c statement_timeout=30000 password=" SECRET);
	join_params(conninfo_keywords(a, true), conninfo_values(a, true), buf, sizeof(buf));
	ck_assert_str_eq(buf, "user=app dbname=app host=/tmp port=5433 sslmode=disable "
			 "gssencmode=disable fallback_application_name=pgleased "
			 "options=-c search_path=app -c statement_timeout=30000 "
			 "-c client_connection_check_interval=1000 password=" SECRET);
	/* no options at all: none passed; the conninfo's password stays */
	join_params(conninfo_keywords(b, true), conninfo_values(b, true), buf, sizeof(buf));
	ck_assert_str_eq(buf, "password=" SECRET " dbname=port=1 host=/tmp sslmode=disable "
			 "gssencmode=disable fallback_application_name=pgleased");

	ck_assert_int_eq(setenv("PGUSER", "envuser", 1), 0);
	ck_assert_int_eq(setenv("PGPORT", "6543", 1), 0);
	conninfo_identity(a, user, sizeof(user), db, sizeof(db), host, sizeof(host), port,
			  sizeof(port));
	ck_assert_str_eq(user, "app");
	ck_assert_str_eq(db, "app");
	ck_assert_str_eq(host, "/tmp");
	ck_assert_str_eq(port, "5433");
	/* libpq's defaults fill in; a dbname holding '=' is not matched: the user is */
	conninfo_identity(b, user, sizeof(user), db, sizeof(db), host, sizeof(host), port,
			  sizeof(port));
	ck_assert_str_eq(user, "envuser");
	ck_assert_str_eq(db, "envuser");
	ck_assert_str_eq(port, "6543");
	config_free(cfg);

	/* a pool_config not built by config_load has none */
	struct pool_config bare = { .conninfo = (char *)"dbname=app" };
	ck_assert_ptr_null(conninfo_keywords(&bare, false));
	ck_assert_ptr_null(conninfo_values(&bare, true));
}
END_TEST

/* Reads a whole file into a malloc'd string. */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t cap = 0;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_gt(getdelim(&text, &cap, '\0', f), 0);
	fclose(f);
	return text;
}

/* Every key of the schema is in the sample file and the man page. */
START_TEST(test_schema_documented)
{
	char *sample = slurp(TOP_SRCDIR "/etc/pglease.conf.in");
	char *man = slurp(TOP_SRCDIR "/doc/pglease.conf.5.in");
	const char *name;
	enum config_section section;
	char pat[128];

	for (size_t i = 0; config_schema_key(i, &name, &section); i++) {
		snprintf(pat, sizeof(pat), "%s = ", name);
		ck_assert_msg(strstr(sample, pat) != NULL,
			      "etc/pglease.conf.in does not show \"%s\"", name);
		snprintf(pat, sizeof(pat), ".B %s\n", name);
		ck_assert_msg(strstr(man, pat) != NULL,
			      "doc/pglease.conf.5.in does not document \"%s\" (no \".B %s\" line)",
			      name, name);
	}
	free(sample);
	free(man);
}
END_TEST

START_TEST(test_sample_is_valid)
{
	char out[8192];
	FILE *f = fopen(TOP_BUILDDIR "/etc/pglease.conf", "r");
	char text[16384], copy[17000], dir[300];

	/* the sample's paths under /run/pglease, which --check-config wants to exist */
	ck_assert_ptr_nonnull(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	snprintf(dir, sizeof(dir), "%s/", testutil_tmpdir());
	size_t used = 0;
	for (const char *p = text; *p != '\0' && used + 300 < sizeof(copy);) {
		if (strncmp(p, "/run/pglease/", 13) == 0) {
			used += (size_t)snprintf(copy + used, sizeof(copy) - used, "%s", dir);
			p += 13;
		} else {
			copy[used++] = *p++;
		}
	}
	copy[used] = '\0';
	ck_assert_ptr_nonnull(strstr(text, "/run/pglease/pglease.sock"));
	char *argv[] = { (char *)PGLEASED, (char *)"--check-config", (char *)"-c",
			 testutil_write_file("sample.conf", copy), NULL };

	ck_assert_msg(testutil_run(argv, out, sizeof(out)) == 0, "%s", out);
	ck_assert_msg(strstr(out, "configuration is valid") != NULL, "%s", out);
}
END_TEST

/* log_file, syslog_facility, syslog_ident, pid_file: read, and handed to the logger. */
START_TEST(test_log_settings)
{
	const char *text =
		"broker = { socket = \"/tmp/x.sock\"; log_level = \"warn\";\n"
		"  log_target = \"file\"; log_file = \"/var/log/pglease/b.log\";\n"
		"  syslog_facility = \"local3\"; syslog_ident = \"pgl-a\";\n"
		"  pid_file = \"/run/pglease/b.pid\"; };\n"
		POOL END;
	int nerrors = -1;
	struct config *cfg = config_load(testutil_write_file("log.conf", text), NULL, NULL,
					 &nerrors);
	struct log_options o;

	ck_assert_int_eq(nerrors, 0);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(cfg->broker.log_file, "/var/log/pglease/b.log");
	ck_assert_str_eq(cfg->broker.pid_file, "/run/pglease/b.pid");
	ck_assert_int_eq(cfg->broker.log_file_line, 2);
	ck_assert_int_eq(cfg->broker.pid_file_line, 4);
	config_log_options(cfg, &o);
	ck_assert_int_eq(o.target, LOG_TARGET_FILE);
	ck_assert_int_eq(o.level, LOG_LEVEL_WARN);
	ck_assert_int_eq(o.facility, LOG_LOCAL3);
	ck_assert_str_eq(o.ident, "pgl-a");
	ck_assert_str_eq(o.file, "/var/log/pglease/b.log");
	config_free(cfg);

	/* the defaults: stderr, daemon, "pgleased", no pid file */
	cfg = config_load(testutil_write_file("log.conf", BROKER POOL END), NULL, NULL, &nerrors);
	ck_assert_ptr_nonnull(cfg);
	config_log_options(cfg, &o);
	ck_assert_int_eq(o.target, LOG_TARGET_STDERR);
	ck_assert_int_eq(o.facility, LOG_DAEMON);
	ck_assert_str_eq(o.ident, "pgleased");
	ck_assert_ptr_null(cfg->broker.pid_file);
	ck_assert_ptr_null(cfg->broker.log_file);
	config_free(cfg);

	/* log_file without log_target "file": a warning, not an error */
	struct output out;
	char path[512];
	check_config_file("broker = { socket = \"/tmp/pglease-unit.sock\"; log_file = "
			  "\"/tmp/x.log\"; };\n" POOL END, &out, path, sizeof(path));
	ck_assert_msg(out.status == 0 && strstr(out.text, "broker.log_file: warning: unused") != NULL,
		      "%s", out.text);
}
END_TEST

START_TEST(test_command_line)
{
	char out[4096];
	char *help[] = { (char *)PGLEASED, (char *)"--help", NULL };
	char *version[] = { (char *)PGLEASED, (char *)"--version", NULL };
	char *bad[] = { (char *)PGLEASED, (char *)"--bogus", NULL };
	char *extra[] = { (char *)PGLEASED, (char *)"-t", (char *)"stray", NULL };

	ck_assert_int_eq(testutil_run(help, out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "--check-config"));
	ck_assert_int_eq(testutil_run(version, out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "pgleased " PACKAGE_VERSION));
	ck_assert_int_eq(testutil_run(bad, out, sizeof(out)), 2);
	ck_assert_int_eq(testutil_run(extra, out, sizeof(out)), 2);
	ck_assert_ptr_nonnull(strstr(out, "unexpected argument \"stray\""));
}
END_TEST

START_TEST(test_conf_from_environment)
{
	char out[4096];
	char *argv[] = { (char *)PGLEASED, (char *)"--check-config", NULL };
	char *path = testutil_write_file("env.conf", POOL "  max_size = 0;\n" END);

	ck_assert_int_eq(setenv("PGLEASE_CONF", path, 1), 0);
	ck_assert_int_eq(testutil_run(argv, out, sizeof(out)), 1);
	ck_assert_msg(strstr(out, "env.conf:4: pools[0].max_size: ") != NULL, "%s", out);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("load");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_bad_file, 0, (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, test_every_error_reported);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_good_file);
	tcase_add_test(tc, test_defaults_and_empty_ids);
	tcase_add_test(tc, test_host_name_warns);
	tcase_add_test(tc, test_pool_allow_lists);
	tcase_add_test(tc, test_password_file);
	tcase_add_test(tc, test_conninfo_password_masked);
	tcase_add_test(tc, test_durations_int_or_float);
	tcase_add_test(tc, test_one_line_pools);
	tcase_add_test(tc, test_schema_documented);
	tcase_add_test(tc, test_sample_is_valid);
	tcase_add_test(tc, test_log_settings);
	tcase_add_test(tc, test_command_line);
	tcase_add_test(tc, test_conf_from_environment);
	suite_add_tcase(s, tc);

	tc = tcase_create("timeouts");
	tcase_add_test(tc, test_seconds_to_ms);
	tcase_add_test(tc, test_backend_options);
	tcase_add_test(tc, test_masked_conninfo);
	tcase_add_test(tc, test_connect_params);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run_suite(config_suite());
}
