# cloudsync-dist tests: PostgreSQL 15 (initdb and pg_ctl from /usr/lib/postgresql/15/bin; the
# test harness runs its own server on a free loopback port as the `postgres` user, so the
# package's own cluster service is never started). Sourced by scripts/install-test-deps.sh.
need_apt postgresql-15
# The harness runs initdb/pg_ctl through runuser (util-linux) when the tests run as root.
need_apt util-linux
