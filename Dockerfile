# sleepwatch watcher: `sleepwatch serve` with the store on a volume.
#
#   docker build -t sleepwatch .
#   docker run -d --name sleepwatch --restart unless-stopped \
#     -e SLEEPWATCH_TELEGRAM_TOKEN -e VAST_API_KEY \
#     -v "$PWD/sleepwatch.toml:/config/sleepwatch.toml:ro" \
#     -v "$HOME/.ssh/vast_ed25519:/config/id_ed25519:ro" \
#     -v sleepwatch-data:/data sleepwatch
#
# The config must say `state_dir = "/data"` under [watcher] and `key = "/config/id_ed25519"`
# in each run. Mounted files must be readable by uid 10001 (or run with --user, see README).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/data

# asyncssh is pure Python: no openssh-client, no compiler; every dependency ships wheels.
WORKDIR /src
COPY . .
RUN pip install . \
 && cd / && rm -rf /src \
 && groupadd --system --gid 10001 sleepwatch \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin sleepwatch \
 && mkdir -p /data /config \
 && chown 10001:10001 /data \
 && chmod 0700 /data

WORKDIR /data
VOLUME ["/data"]
USER 10001:10001

# The service rewrites /data/service.heartbeat every 30 s; `health` fails when it is older
# than 120 s, i.e. when the event loop is stuck or the process is gone.
HEALTHCHECK --interval=60s --timeout=15s --start-period=60s --retries=3 \
  CMD ["sleepwatch", "--config", "/config/sleepwatch.toml", "health"]

ENTRYPOINT ["sleepwatch", "--config", "/config/sleepwatch.toml"]
CMD ["serve"]
