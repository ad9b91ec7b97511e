/*
 * helper.c - cancel requests and pg_terminate_backend() in helper threads.
 *
 * libpq 15's PQcancel blocks while it connects, and so does a connection
 * opened to terminate a backend: both run in detached threads that take no
 * signals.  A finished job is handed back to the loop through an ev_async;
 * the loop hears of it only through callbacks (helper_setup()'s landed, the
 * broker's backend_events->terminated).
 */
#include "autoconf.h"

#include "broker/helper.h"
#include "broker/backend.h"
#include "broker/pool.h"
#include "common/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A finished cancel is handed back to the loop because a slot released
 * meanwhile must not be reset, and so lent to the next holder, before the
 * cancel has landed: it would cancel that holder's query instead.  One
 * cancel at most is in flight per slot.
 */
struct cancel_job {
	struct helpers *h;
	PGcancel *cancel;
	struct slot *slot;		/* NULL once the slot is gone */
	uint64_t backend_gen;		/* the backend it cancels */
	int pid;
	char pool[CONFIG_POOL_NAME_MAX + 1];
	struct cancel_job *next;	/* in h->running, then h->done */
	struct cancel_job **prevp;
};

/*
 * pg_terminate_backend() for a backend that did not end, when the pool has
 * no idle connection to run it on: a connection of its own, opened in a
 * helper thread (libpq blocks there), used once and closed.  The job owns
 * copies of everything it needs; the slot may be gone before it is done.
 */
struct terminate_job {
	struct helpers *h;
	struct pool *pool_ref;		/* told when done: the pool counts this connection */
	struct terminate_job *next;
	int pid;
	char pool[CONFIG_POOL_NAME_MAX + 1];
	const char **kw, **val;		/* NULL-terminated, after the job in its allocation */
	size_t strings_len;
	char *strings;			/* what kw and val point to, after them */
};

static void
job_unlink(struct cancel_job *job)
{
	*job->prevp = job->next;
	if (job->next != NULL)
		job->next->prevp = job->prevp;
}

static void
job_push(struct cancel_job **head, struct cancel_job *job)
{
	job->next = *head;
	job->prevp = head;
	if (*head != NULL)
		(*head)->prevp = &job->next;
	*head = job;
}

/* In the loop: terminate helpers that finished give their room back. */
static void
terminated_done(struct terminate_job *list)
{
	while (list != NULL) {
		struct terminate_job *next = list->next;
		struct pool *p = list->pool_ref;
		free(list);
		p->broker->backend_events->terminated(p);
		list = next;
	}
}

static void
helpers_done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct helpers *h = w->data;
	struct cancel_job *job;

	(void)loop;
	(void)revents;
	pthread_mutex_lock(&h->lock);
	job = h->done;
	h->done = NULL;
	struct terminate_job *term = h->terminated;
	h->terminated = NULL;
	pthread_mutex_unlock(&h->lock);
	terminated_done(term);
	while (job != NULL) {
		struct cancel_job *next = job->next;
		struct slot *slot = job->slot;

		/* A slot gone, or a backend replaced since: nothing waits for it. */
		if (slot != NULL && slot->backend_gen == job->backend_gen) {
			slot->cancel_in_flight = false;
			h->landed(slot);
		}
		free(job);
		job = next;
	}
}

void
helper_setup(struct helpers *h, struct ev_loop *loop, void (*landed)(struct slot *slot))
{
	pthread_mutex_init(&h->lock, NULL);
	h->running = NULL;
	h->done = NULL;
	h->terminated = NULL;
	h->loop = loop;
	h->closed = false;
	h->landed = landed;
	ev_async_init(&h->async, helpers_done_cb);
	h->async.data = h;
	ev_async_start(loop, &h->async);
}

void
helper_teardown(struct helpers *h)
{
	pthread_mutex_lock(&h->lock);
	h->closed = true;
	for (struct cancel_job *job = h->running; job != NULL; job = job->next)
		job->slot = NULL;
	while (h->done != NULL) {
		struct cancel_job *job = h->done;
		h->done = job->next;
		free(job);
	}
	while (h->terminated != NULL) {
		struct terminate_job *job = h->terminated;
		h->terminated = job->next;
		free(job);
	}
	pthread_mutex_unlock(&h->lock);
	if (h->loop != NULL)
		ev_async_stop(h->loop, &h->async);
}

/*
 * Starts fn(arg) in a detached helper thread that takes no signals (they
 * are the loop's).  Returns 0 or an errno value.
 */
static int
start_helper(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&tid, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* --- cancel ------------------------------------------------------------- */

static void *
cancel_thread(void *arg)
{
	struct cancel_job *job = arg;
	struct helpers *h = job->h;
	char err[256];

	if (!PQcancel(job->cancel, err, sizeof(err)))
		log_warnx("cancel failed pool=%s backend_pid=%d: %s", job->pool, job->pid, err);
	PQfreeCancel(job->cancel);
	job->cancel = NULL;

	pthread_mutex_lock(&h->lock);
	job_unlink(job);
	if (h->closed) {
		free(job);
	} else {
		job_push(&h->done, job);
		ev_async_send(h->loop, &h->async);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

void
helper_cancel(struct slot *slot)
{
	struct helpers *h = &slot->pool->broker->helpers;
	struct cancel_job *job;

	if (slot->conn == NULL || slot->cancel_in_flight)
		return;		/* one is on its way already: that is enough */
	if ((job = calloc(1, sizeof(*job))) == NULL)
		return;
	job->h = h;
	job->cancel = PQgetCancel(slot->conn);
	job->slot = slot;
	job->backend_gen = slot->backend_gen;
	job->pid = slot->backend_pid;
	snprintf(job->pool, sizeof(job->pool), "%s", slot->pool->cfg->name);
	if (job->cancel == NULL) {
		free(job);
		return;
	}
	pthread_mutex_lock(&h->lock);
	job_push(&h->running, job);
	int rc = start_helper(cancel_thread, job);
	if (rc != 0)
		job_unlink(job);
	pthread_mutex_unlock(&h->lock);
	if (rc != 0) {
		log_warnx("cannot start a cancel thread pool=%s backend_pid=%d: %s",
			  job->pool, job->pid, strerror(rc));
		PQfreeCancel(job->cancel);
		free(job);
		return;
	}
	slot->cancel_in_flight = true;
}

void
helper_forget(struct slot *slot)
{
	struct helpers *h = &slot->pool->broker->helpers;

	pthread_mutex_lock(&h->lock);
	for (struct cancel_job *job = h->running; job != NULL; job = job->next)
		if (job->slot == slot)
			job->slot = NULL;
	for (struct cancel_job *job = h->done; job != NULL; job = job->next)
		if (job->slot == slot)
			job->slot = NULL;
	pthread_mutex_unlock(&h->lock);
}

/* --- terminate ---------------------------------------------------------- */

static void *
terminate_thread(void *arg)
{
	struct terminate_job *job = arg;
	struct helpers *h = job->h;
	char sql[64], msg[512];
	PGconn *conn = PQconnectdbParams(job->kw, job->val, 0);

	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", job->pid);
	if (PQstatus(conn) != CONNECTION_OK) {
		log_one_line(msg, sizeof(msg), conn != NULL ? PQerrorMessage(conn) : "out of memory");
		log_warnx("cannot connect to end backend_pid=%d of pool=%s: %s", job->pid,
			  job->pool, msg);
	} else {
		PGresult *r = PQexec(conn, sql);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			log_one_line(msg, sizeof(msg), PQresultErrorMessage(r));
			log_warnx("pg_terminate_backend(%d) failed pool=%s: %s", job->pid,
				  job->pool, msg);
		} else if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
			log_warnx("pg_terminate_backend(%d) pool=%s: no such backend, or not "
				  "allowed to end it", job->pid, job->pool);
		}
		PQclear(r);
	}
	PQfinish(conn);
	/* The secret in job->strings goes before the memory does. */
	explicit_bzero(job->strings, job->strings_len);
	pthread_mutex_lock(&h->lock);
	if (h->closed) {
		free(job);
	} else {
		job->next = h->terminated;
		h->terminated = job;
		ev_async_send(h->loop, &h->async);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

int
helper_terminate_apart(struct pool *p, int pid, const char *const *kw, const char *const *val)
{
	size_t need = 0;
	int n;

	for (n = 0; kw[n] != NULL; n++)
		need += strlen(kw[n]) + strlen(val[n]) + 2;

	/* The job, then kw and val (n + 1 pointers each), then the strings. */
	size_t ptrs = 2 * ((size_t)n + 1) * sizeof(char *);
	struct terminate_job *job = calloc(1, sizeof(*job) + ptrs + need + 1);
	if (job == NULL) {
		log_warnx("cannot end backend_pid=%d of pool=%s: out of memory", pid, p->cfg->name);
		return -1;
	}
	job->h = &p->broker->helpers;
	job->pool_ref = p;
	job->pid = pid;
	snprintf(job->pool, sizeof(job->pool), "%s", p->cfg->name);
	job->kw = (const char **)(job + 1);
	job->val = job->kw + n + 1;
	job->strings = (char *)(job->val + n + 1);
	job->strings_len = need;
	char *at = job->strings;
	for (int i = 0; i < n; i++) {
		size_t k = strlen(kw[i]) + 1, v = strlen(val[i]) + 1;
		job->kw[i] = memcpy(at, kw[i], k);
		job->val[i] = memcpy(at + k, val[i], v);
		at += k + v;
	}

	int rc = start_helper(terminate_thread, job);
	if (rc != 0) {
		log_warnx("cannot start a thread to end backend_pid=%d of pool=%s: %s", job->pid,
			  job->pool, strerror(rc));
		explicit_bzero(job->strings, need);
		free(job);
		return -1;
	}
	return 0;
}
