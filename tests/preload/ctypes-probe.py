"""A ctypes program that calls libpq directly: PQconnectdb, PQexec, PQfinish."""
import ctypes
import ctypes.util

pq = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
pq.PQconnectdb.restype = ctypes.c_void_p
pq.PQconnectdb.argtypes = [ctypes.c_char_p]
pq.PQstatus.argtypes = [ctypes.c_void_p]
pq.PQexec.restype = ctypes.c_void_p
pq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
pq.PQgetvalue.restype = ctypes.c_char_p
pq.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
pq.PQclear.argtypes = [ctypes.c_void_p]
pq.PQfinish.argtypes = [ctypes.c_void_p]

conn = pq.PQconnectdb(b"")
if pq.PQstatus(conn) != 0:
    raise SystemExit("connect failed")
r = pq.PQexec(conn, b"SELECT 'ctypes ' || 6 * 7")
print(pq.PQgetvalue(r, 0, 0).decode())
pq.PQclear(r)
pq.PQfinish(conn)
