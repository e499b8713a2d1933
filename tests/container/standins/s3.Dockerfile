# Test-only stand-in for the `minio/minio` and `minio/mc` images of docker-compose.yml, for
# machines that reach no image registry: moto's standalone S3 server (and boto3 for the bucket
# job) from pip on the local python:3.11-slim base. Only S3 is served: `moto[s3]` plus Flask
# (moto_server's web layer). The `server` extra would add every other AWS service's
# dependencies (cfn-lint, docker, graphql, ...) and take over a minute to install.
FROM python:3.11-slim
RUN pip install --no-cache-dir "moto[s3]>=5,<6" flask flask-cors \
    && useradd --create-home --uid 10002 --user-group moto
USER moto
CMD ["moto_server", "-H", "127.0.0.1", "-p", "9000"]
