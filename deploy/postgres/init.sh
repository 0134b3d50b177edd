#!/bin/sh
# First start of the compose PostgreSQL: the role metricsd connects as. pg_monitor grants
# the statistics views (pg_stat_statements with query text of every user) and nothing else.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pw="${METRICSD_PG_PASSWORD:-metricsd}" <<'SQL'
CREATE ROLE metricsd LOGIN PASSWORD :'pw';
GRANT pg_monitor TO metricsd;
GRANT CONNECT ON DATABASE app TO metricsd;
SQL
