#!/usr/bin/perl
# workers.pl TAG WORKERS ITERATIONS - a preforking Perl program on DBD::Pg.
#
# Forks a victim that connects, inserts a row (worker 0) and is SIGKILLed
# before it commits, and WORKERS workers that each connect, insert a row
# tagged TAG, check what they see, commit and disconnect, ITERATIONS times.
# Then counts the rows of each: the victim's must be missing, every
# worker's all there.  Prints one line per process and "ok" (exit 0), or
# "FAILED" (exit 1).  Connects with libpq's environment (PGHOST, ...), so
# that the same program runs directly and under pglease-run.
use strict;
use warnings;
use DBI;
use DBD::Pg;
use POSIX qw(_exit);

@ARGV == 3 or die "usage: workers.pl TAG WORKERS ITERATIONS\n";
my ($tag, $nworkers, $iterations) = @ARGV;
$| = 1;

sub connect_db {
	return DBI->connect('dbi:Pg:', undef, undef,
			    { AutoCommit => 0, RaiseError => 1, PrintError => 0 });
}

sub work {
	my ($worker) = @_;
	for my $n (1 .. $iterations) {
		my $dbh = connect_db();
		$dbh->do('INSERT INTO client_rows (tag, worker, iter) VALUES (?, ?, ?)', undef,
			 $tag, $worker, $n);
		my ($mine) = $dbh->selectrow_array(
			'SELECT count(*) FROM client_rows WHERE tag = ? AND worker = ?', undef,
			$tag, $worker);
		die "iteration $n sees $mine rows of its own\n" unless $mine == $n;
		# On a backend that carried the victim's transaction on, its row would show.
		my ($victim) = $dbh->selectrow_array(
			'SELECT count(*) FROM client_rows WHERE tag = ? AND worker = 0', undef, $tag);
		die "iteration $n sees the victim's row\n" if $victim != 0;
		$dbh->commit;
		$dbh->disconnect;
	}
}

pipe(my $from_victim, my $to_parent) or die "pipe: $!\n";
my $victim = fork() // die "fork: $!\n";
if ($victim == 0) {
	close $from_victim;
	my $dbh = connect_db();
	$dbh->do('INSERT INTO client_rows (tag, worker, iter) VALUES (?, 0, 0)', undef, $tag);
	syswrite $to_parent, "inserted\n";
	sleep 60;	# killed before it commits
	_exit(3);
}
close $to_parent;
my $said = <$from_victim>;
die "the victim did not insert its row\n" unless defined $said && $said eq "inserted\n";

my @workers;
for my $i (1 .. $nworkers) {
	my $pid = fork() // die "fork: $!\n";
	if ($pid == 0) {
		my $ok = eval { work($i); 1 };
		print STDERR "worker $i: $@" unless $ok;
		_exit($ok ? 0 : 1);
	}
	push @workers, $pid;
}
kill 'KILL', $victim;
waitpid($victim, 0);
print "victim: killed by signal ", $? & 127, "\n";
my $failed = 0;
for my $i (1 .. $nworkers) {
	waitpid($workers[$i - 1], 0);
	next if $? == 0;
	print "worker $i: exit status ", $? >> 8, "\n";
	$failed++;
}

my $dbh = connect_db();
my $rows = $dbh->selectall_arrayref(
	'SELECT worker, count(*) FROM client_rows WHERE tag = ? GROUP BY worker', undef, $tag);
$dbh->rollback;
$dbh->disconnect;
my %count = map { $_->[0] => $_->[1] } @$rows;
$count{$_} //= 0 for 0 .. $nworkers;
print "victim: $count{0} rows\n";
print "worker $_: $count{$_} rows\n" for 1 .. $nworkers;
my $bad = $failed || $count{0} != 0 || grep { $count{$_} != $iterations } 1 .. $nworkers;
print $bad ? "FAILED\n" : "ok\n";
exit($bad ? 1 : 0);
