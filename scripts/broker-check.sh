#!/usr/bin/env bash
# Exits 0 when RabbitMQ (AMQP and management API) answers on localhost;
# otherwise prints one line saying how to start or install it and exits 1.
host=${WARREN_BROKER_HOST:-127.0.0.1}
if ! (exec 3<>"/dev/tcp/$host/5672") 2>/dev/null; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "warren: RabbitMQ is not running on $host:5672; start it with \`rabbitmq-server -detached\` (as root), then \`rabbitmq-plugins enable rabbitmq_management\`" >&2
  else
    echo "warren: RabbitMQ is not installed; install it with \`apt-get install rabbitmq-server\` (Debian/Ubuntu) and enable the management plugin with \`rabbitmq-plugins enable rabbitmq_management\`" >&2
  fi
  exit 1
fi
if ! (exec 3<>"/dev/tcp/$host/15672") 2>/dev/null; then
  echo "warren: RabbitMQ's management API is not reachable on $host:15672; enable it with \`rabbitmq-plugins enable rabbitmq_management\`" >&2
  exit 1
fi
