/*
 * check_access.c - allowed_uids and allowed_gids, admin_uids and admin_gids
 * against peer identities.
 */
#include "autoconf.h"

#include "broker/access.h"
#include "testutil.h"

#include <check.h>

static uid_t uids[] = { 1001, 1002 };
static gid_t gids[] = { 2001 };

/* Both lists empty: the broker's own uid only. */
START_TEST(test_empty_lists_mean_owner_only)
{
	struct broker_config bc = { 0 };
	struct access_peer owner = { .uid = 500, .gid = 500 };
	struct access_peer other = { .uid = 501, .gid = 500 };
	struct access_peer root = { .uid = 0, .gid = 0 };

	ck_assert(access_broker_allows(&bc, 500, &owner));
	ck_assert(!access_broker_allows(&bc, 500, &other));
	ck_assert(!access_broker_allows(&bc, 500, &root));
}
END_TEST

/* A non-empty list replaces the default: the owner needs to be named too. */
START_TEST(test_list_replaces_owner)
{
	struct broker_config bc = { .allowed_uids = uids, .n_allowed_uids = 2 };
	struct access_peer owner = { .uid = 500, .gid = 500 };
	struct access_peer listed = { .uid = 1002, .gid = 9 };

	ck_assert(!access_broker_allows(&bc, 500, &owner));
	ck_assert(access_broker_allows(&bc, 500, &listed));
	ck_assert(access_broker_allows(&bc, 1001, &(struct access_peer){ .uid = 1001 }));

	/* a gid list alone also replaces it */
	struct broker_config bg = { .allowed_gids = gids, .n_allowed_gids = 1 };
	ck_assert(!access_broker_allows(&bg, 500, &owner));
}
END_TEST

/* Primary and supplementary groups both count. */
START_TEST(test_groups)
{
	struct broker_config bc = { .allowed_uids = uids, .n_allowed_uids = 2,
				    .allowed_gids = gids, .n_allowed_gids = 1 };
	gid_t sup[] = { 7, 2001 }, none[] = { 7, 8 };
	struct access_peer primary = { .uid = 3000, .gid = 2001 };
	struct access_peer supplementary = { .uid = 3000, .gid = 3000, .groups = sup, .ngroups = 2 };
	struct access_peer stranger = { .uid = 3000, .gid = 3000, .groups = none, .ngroups = 2 };

	ck_assert(access_broker_allows(&bc, 0, &primary));
	ck_assert(access_broker_allows(&bc, 0, &supplementary));
	ck_assert(!access_broker_allows(&bc, 0, &stranger));
}
END_TEST

/* Administrators: both lists empty means root and the broker's uid; lists replace that. */
START_TEST(test_admin_lists)
{
	struct broker_config bc = { .allowed_uids = uids, .n_allowed_uids = 2 };
	gid_t sup[] = { 7, 2001 };
	struct access_peer owner = { .uid = 500, .gid = 500 };
	struct access_peer root = { .uid = 0, .gid = 0 };
	struct access_peer listed = { .uid = 1001, .gid = 1001 };
	struct access_peer member = { .uid = 3000, .gid = 3000, .groups = sup, .ngroups = 2 };

	/* allowed_uids says nothing about who administers */
	ck_assert(access_admin_allows(&bc, 500, &owner));
	ck_assert(access_admin_allows(&bc, 500, &root));
	ck_assert(!access_admin_allows(&bc, 500, &listed));
	ck_assert(!access_admin_allows(&bc, 500, &member));

	struct broker_config ba = { .admin_uids = uids, .n_admin_uids = 2 };
	ck_assert(access_admin_allows(&ba, 500, &listed));
	ck_assert(!access_admin_allows(&ba, 500, &owner));
	ck_assert(!access_admin_allows(&ba, 500, &root));

	struct broker_config bg = { .admin_gids = gids, .n_admin_gids = 1 };
	ck_assert(access_admin_allows(&bg, 500, &member));
	ck_assert(access_admin_allows(&bg, 500, &(struct access_peer){ .uid = 9, .gid = 2001 }));
	ck_assert(!access_admin_allows(&bg, 500, &root));
}
END_TEST

static Suite *
access_suite(void)
{
	Suite *s = suite_create("access");
	TCase *tc = tcase_create("broker lists");

	tcase_add_test(tc, test_empty_lists_mean_owner_only);
	tcase_add_test(tc, test_list_replaces_owner);
	tcase_add_test(tc, test_groups);
	tcase_add_test(tc, test_admin_lists);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run_suite(access_suite());
}
