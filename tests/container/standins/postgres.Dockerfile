# Test-only stand-in for the `postgres:16` image of docker-compose.yml, for machines that reach
# no image registry: Debian's PostgreSQL on the local python:3.11-slim (Debian bookworm) base.
# It honours the same POSTGRES_USER / POSTGRES_DB / POSTGRES_PASSWORD and data volume, and
# listens on 127.0.0.1:$PGPORT only (the compose test runs every service on the host network).
FROM python:3.11-slim
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data \
    && chown -R postgres:postgres /var/lib/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data/pgdata \
    PGPORT=5432
USER postgres
CMD ["sh", "/usr/local/bin/postgres-entrypoint.sh"]
