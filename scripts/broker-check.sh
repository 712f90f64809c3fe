#!/usr/bin/env bash
# Exits 0 when RabbitMQ's AMQP port and management API answer where Warren is
# configured to reach them (WARREN_AMQP_URL and WARREN_AMQP_MANAGEMENT_URL,
# else the configuration files); otherwise prints one line saying what did
# not answer and how to start or install it, and exits 1.
set -uo pipefail
cd "$(dirname "$0")/.."

endpoints=$(node scripts/broker-endpoints.js) || exit 1

# A TCP connect, bounded: a host that drops packets must not hang `npm start`.
answers() {
  timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

is_local() {
  case "$1" in 127.* | localhost | ::1) return 0 ;; *) return 1 ;; esac
}

while IFS=$'\t' read -r kind host port source; do
  if answers "$host" "$port"; then continue; fi
  if [ "$kind" = amqp ]; then
    if ! is_local "$host"; then
      echo "warren: RabbitMQ does not answer at $host:$port (from $source); start it there, or point WARREN_AMQP_URL at a running broker" >&2
    elif command -v rabbitmq-server >/dev/null 2>&1; then
      echo "warren: RabbitMQ is not running on $host:$port (from $source); start it with \`rabbitmq-server -detached\` (as root), then \`rabbitmq-plugins enable rabbitmq_management\`" >&2
    else
      echo "warren: nothing answers on $host:$port (from $source) and RabbitMQ is not installed; install it with \`apt-get install rabbitmq-server\` (Debian/Ubuntu) and enable the management plugin with \`rabbitmq-plugins enable rabbitmq_management\`" >&2
    fi
  else
    echo "warren: RabbitMQ's management API does not answer at $host:$port (from $source); enable it with \`rabbitmq-plugins enable rabbitmq_management\`, or point WARREN_AMQP_MANAGEMENT_URL at it" >&2
  fi
  exit 1
done <<<"$endpoints"
exit 0
