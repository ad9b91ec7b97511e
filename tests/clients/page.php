<?php
// page.php - one request's database work under Apache prefork + mod_php, as a
// PHP site does it: pg_connect, one parameterised query, pg_close.  Connects
// to the conninfo in PGL_CONNINFO (httpd.conf.in's SetEnv).  Answers one
// line of fixed length, "ok ...", or status 500 when the answer is wrong.
$conninfo = $_SERVER['PGL_CONNINFO'] ?? '';
$n = random_int(5000, 9999);
$conn = pg_connect($conninfo);
if ($conn === false) {
	http_response_code(500);
	echo "no connection\n";
	exit;
}
$result = pg_query_params($conn, 'SELECT $1::int * 2 AS doubled, current_user AS who, '
	. 'current_database() AS db', array($n));
$row = $result !== false ? pg_fetch_assoc($result) : false;
pg_close($conn);
if ($row === false || (int)$row['doubled'] !== 2 * $n) {
	http_response_code(500);
	echo "wrong answer\n";
	exit;
}
$me = posix_getpwuid(posix_geteuid());
printf("ok n=%d doubled=%d user=%s db=%s uid=%s\n", $n, $row['doubled'], $row['who'], $row['db'],
	$me !== false ? $me['name'] : posix_geteuid());
