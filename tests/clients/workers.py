#!/usr/bin/python3
"""workers.py TAG WORKERS ITERATIONS - a preforking Python program on psycopg2.

Forks a victim that connects, inserts a row (worker 0) and is SIGKILLed
before it commits, and WORKERS workers that each connect, insert a row
tagged TAG, check what they see, commit and disconnect, ITERATIONS times.
Then counts the rows of each: the victim's must be missing, every worker's
all there.  Prints one line per process and "ok" (exit 0), or "FAILED"
(exit 1).  Connects with libpq's environment (PGHOST, ...), so that the
same program runs directly and under pglease-run.
"""
import os
import signal
import sys
import time
import traceback

import psycopg2


def work(tag, worker, iterations):
    for n in range(1, iterations + 1):
        conn = psycopg2.connect("")
        cur = conn.cursor()
        cur.execute("INSERT INTO client_rows (tag, worker, iter) VALUES (%s, %s, %s)",
                    (tag, worker, n))
        cur.execute("SELECT count(*) FROM client_rows WHERE tag = %s AND worker = %s",
                    (tag, worker))
        mine = cur.fetchone()[0]
        if mine != n:
            raise RuntimeError("iteration %d sees %d rows of its own" % (n, mine))
        # On a backend that carried the victim's transaction on, its row would show.
        cur.execute("SELECT count(*) FROM client_rows WHERE tag = %s AND worker = 0", (tag,))
        if cur.fetchone()[0] != 0:
            raise RuntimeError("iteration %d sees the victim's row" % n)
        conn.commit()
        conn.close()


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: workers.py TAG WORKERS ITERATIONS")
    tag, nworkers, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    rfd, wfd = os.pipe()
    victim = os.fork()
    if victim == 0:
        os.close(rfd)
        conn = psycopg2.connect("")
        conn.cursor().execute("INSERT INTO client_rows (tag, worker, iter) VALUES (%s, 0, 0)",
                              (tag,))
        os.write(wfd, b"inserted\n")
        time.sleep(60)  # killed before it commits
        os._exit(3)
    os.close(wfd)
    if os.read(rfd, 64) != b"inserted\n":
        sys.exit("the victim did not insert its row")

    workers = []
    sys.stdout.flush()
    for i in range(1, nworkers + 1):
        pid = os.fork()
        if pid == 0:
            try:
                work(tag, i, iterations)
                code = 0
            except Exception:
                sys.stderr.write("worker %d: %s" % (i, traceback.format_exc(limit=1)))
                code = 1
            sys.stderr.flush()
            os._exit(code)
        workers.append(pid)
    os.kill(victim, signal.SIGKILL)
    _, status = os.waitpid(victim, 0)
    print("victim: killed by signal %d" % (os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0))
    failed = 0
    for i, pid in enumerate(workers, 1):
        _, status = os.waitpid(pid, 0)
        if status != 0:
            print("worker %d: exit status %d" % (i, os.waitstatus_to_exitcode(status)))
            failed += 1

    conn = psycopg2.connect("")
    cur = conn.cursor()
    cur.execute("SELECT worker, count(*) FROM client_rows WHERE tag = %s GROUP BY worker", (tag,))
    count = dict(cur.fetchall())
    conn.rollback()
    conn.close()
    print("victim: %d rows" % count.get(0, 0))
    for i in range(1, nworkers + 1):
        print("worker %d: %d rows" % (i, count.get(i, 0)))
    bad = failed or count.get(0, 0) != 0 or any(
        count.get(i, 0) != iterations for i in range(1, nworkers + 1))
    print("FAILED" if bad else "ok")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
