# Redis for docker/compose.yml where no registry serves the official image: Debian's
# redis-server on the relay image (Debian bookworm either way). compose builds it once
# (tag relay-redis:local); with a registry, set REDIS_IMAGE=redis:7-bookworm instead.
ARG RELAY_IMAGE=relay:local
FROM ${RELAY_IMAGE}
USER root
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb
USER redis
HEALTHCHECK NONE
ENTRYPOINT ["redis-server"]
CMD ["--bind", "127.0.0.1"]
