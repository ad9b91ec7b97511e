"""psycopg 3 (Debian's ctypes implementation) under pglease-run: a
synchronous connect, an AsyncConnection (PQconnectStart/PQconnectPoll), a
server-side cursor and a COPY; prints what it saw."""
import asyncio
import sys

import psycopg

print("impl", psycopg.pq.__impl__)
with psycopg.connect("", application_name="psycopg3-probe") as conn:
    print("sync", conn.execute("SELECT current_setting('application_name')").fetchone()[0])
    with conn.cursor(name="probe_cursor") as cur:
        cur.execute("SELECT generate_series(1, 1000)")
        print("server-side cursor", sum(r[0] for r in cur))
    conn.execute("CREATE TEMP TABLE t (x int)")
    with conn.cursor().copy("COPY t FROM STDIN") as copy:
        for i in range(100):
            copy.write_row((i,))
    out = []
    with conn.cursor().copy("COPY (SELECT sum(x) FROM t) TO STDOUT") as copy:
        for row in copy.rows():
            out.append(row[0])
    print("copy", out[0])


async def main():
    aconn = await psycopg.AsyncConnection.connect("")
    cur = await aconn.execute("SELECT 40 + 2")
    print("async", (await cur.fetchone())[0])
    await aconn.close()

asyncio.run(main())
sys.exit(0)
