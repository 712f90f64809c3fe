// Prints the host and port of the broker's AMQP and management endpoints, as
// Warren would configure them: WARREN_AMQP_URL / WARREN_AMQP_MANAGEMENT_URL,
// else WARREN_CONFIG, config/<NODE_ENV>.json, config/default.json (the same
// order as src/config.ts, without needing the build). One tab-separated line each:
//   amqp <host> <port> <where the URL came from>
//   management <host> <port> <where the URL came from>
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const configDir = path.join(__dirname, '..', 'config');

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return {};
  }
}

function configured(key, envName) {
  if (process.env[envName]) return [process.env[envName], envName];
  let value;
  let source;
  const layers = [[path.join(configDir, 'default.json'), 'config/default.json']];
  if (process.env.NODE_ENV) layers.push([path.join(configDir, `${process.env.NODE_ENV}.json`), `config/${process.env.NODE_ENV}.json`]);
  for (const [file, name] of layers) {
    const amqp = readJson(file).amqp;
    if (amqp && typeof amqp[key] === 'string') [value, source] = [amqp[key], `amqp.${key} in ${name}`];
  }
  if (process.env.WARREN_CONFIG) {
    try {
      const amqp = JSON.parse(process.env.WARREN_CONFIG).amqp;
      if (amqp && typeof amqp[key] === 'string') [value, source] = [amqp[key], `amqp.${key} in WARREN_CONFIG`];
    } catch {
      // An invalid WARREN_CONFIG is reported by Warren itself, with the key it names.
    }
  }
  return [value, source];
}

const defaultPorts = { 'amqp:': 5672, 'amqps:': 5671, 'http:': 80, 'https:': 443 };

function endpoint(kind, key, envName) {
  const [value, source] = configured(key, envName);
  let url;
  try {
    url = new URL(value);
  } catch {
    process.stderr.write(`warren: ${source ?? envName} is not a URL: ${value}\n`);
    process.exit(2);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port || defaultPorts[url.protocol];
  if (!host || !port) {
    process.stderr.write(`warren: ${source} names no host and port: ${value}\n`);
    process.exit(2);
  }
  process.stdout.write(`${kind}\t${host}\t${port}\t${source}\n`);
}

endpoint('amqp', 'url', 'WARREN_AMQP_URL');
endpoint('management', 'managementUrl', 'WARREN_AMQP_MANAGEMENT_URL');
