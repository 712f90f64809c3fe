# syntax=docker/dockerfile:1
# Warren: one image for every process (`warren api`, `warren worker <name>`,
# `warren topology apply`, `warren migrate`, `warren status`, `warren dlq ...`).

# ---- build: compile TypeScript, then keep only the runtime dependencies ----
FROM node:24-slim AS build
WORKDIR /app
# sqlite3 compiles from source where no prebuilt binary matches the platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: node:24-slim, compiled code, production dependencies, non-root ----
FROM node:24-slim
# The commit the image is built from, for warren_build_info (`--build-arg WARREN_COMMIT=$(git rev-parse HEAD)`; .git is not in the context).
ARG WARREN_COMMIT=unknown
ENV NODE_ENV=production WARREN_COMMIT=${WARREN_COMMIT}
WORKDIR /app
# tini (Debian's) as PID 1: it reaps orphaned processes (those a dying supervised child leaves under
# `warren start` or `--processes N`) and forwards signals to warren. The kernel gives PID 1 no default
# signal actions, so Node there ignores a SIGTERM or SIGINT that arrives before warren's handlers are installed.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system warren \
 && useradd --system --gid warren --home-dir /app --shell /usr/sbin/nologin warren \
 && mkdir -p /app/data \
 && chown warren:warren /app/data
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY package.json ./
COPY bin ./bin
COPY config ./config
COPY rabbitmq ./rabbitmq
COPY proto ./proto
# Code and configuration stay root-owned and read-only to the process; only data/ (SQLite) is its own.
USER warren
EXPOSE 3000
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--enable-source-maps", "/app/bin/warren"]
CMD ["--help"]
