# Test-only stand-in for the `minio/minio` and `minio/mc` images of docker-compose.yml, for
# machines that reach no image registry: moto's standalone S3 server (and boto3 for the bucket
# job) from pip on the local python:3.11-slim base.
FROM python:3.11-slim
RUN pip install --no-cache-dir "moto[server]>=5,<6" \
    && useradd --create-home --uid 10002 --user-group moto
USER moto
CMD ["moto_server", "-H", "127.0.0.1", "-p", "9000"]
