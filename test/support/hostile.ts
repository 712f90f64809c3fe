import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { Knex } from 'knex';
import type { Config } from '../../src/config';
import { openDatabase } from '../../src/db/knex';

/**
 * What the integration harness leaves out for hostile-input tests: raw HTTP
 * (fetch always adds a content type, encodes the path and refuses some
 * headers), raw socket bytes, and the api database for counting the outbox.
 */
export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- responses are JSON of many shapes, asserted field by field
  json: any;
}

export interface RawRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Send the body in pieces with Transfer-Encoding: chunked, no Content-Length. */
  chunked?: boolean;
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One request on its own connection. A server may answer (413) before the
 * body is sent and close: the answer counts, a write error after it does not.
 */
export function rawHttp(port: number, req: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const body = req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, 'utf8');
    const headers: Record<string, string> = { ...(req.headers ?? {}) };
    if (body && !req.chunked) headers['content-length'] = String(body.length);
    const r = http.request({ host: '127.0.0.1', port, method: req.method, path: req.path, headers, agent: false });
    let answered = false;
    r.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', () => undefined);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: parseJson(text) });
      });
    });
    r.on('error', (err) => {
      if (!answered) reject(err);
    });
    if (body && req.chunked) {
      // 16 KiB pieces, each its own chunk: the server cannot know the size up front.
      for (let i = 0; i < body.length; i += 16_384) r.write(body.subarray(i, i + 16_384));
    } else if (body) {
      r.write(body);
    }
    r.end();
  });
}

/** Writes raw bytes (a request line no HTTP client would send) and parses what comes back. */
export function rawSocket(port: number, bytes: Buffer | string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => (chunks.length ? undefined : reject(err)));
    socket.on('close', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const [head = '', text = ''] = raw.split('\r\n\r\n', 2);
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers: http.IncomingHttpHeaders = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1] ?? 0), headers, text, json: parseJson(text) });
    });
    socket.setTimeout(10_000, () => socket.destroy());
    socket.end(bytes);
  });
}

/** The api service's own database (SQLite file or PostgreSQL schema), as the API opens it. */
export function openApiDatabase(config: Config): Knex {
  return openDatabase(config, 'api');
}

export async function outboxRows(db: Knex): Promise<number> {
  const [row] = await db('outbox').count<{ n: number | string }[]>({ n: '*' });
  return Number(row?.n ?? 0);
}

/** A token for `userId` that expired a minute ago, stored the way the API stores tokens (SHA-256 hex). */
export async function insertExpiredToken(db: Knex, userId: string): Promise<string> {
  const token = 'wrn_' + crypto.randomBytes(32).toString('base64url');
  const now = Date.now();
  await db('tokens').insert({
    id: crypto.randomUUID(),
    token_hash: crypto.createHash('sha256').update(token).digest('hex'),
    user_id: userId,
    created_at: now - 86_400_000,
    expires_at: now - 60_000,
  });
  return token;
}
