import http from 'node:http';
import Koa from 'koa';
import { Router } from '@koa/router';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { jsonBody } from '../../src/api/middleware/jsonBody';
import type { ApiState } from '../../src/api/context';
import { createTweetBody, parseRequest } from '../../src/api/validation';
import { newId } from '../../src/domain/ids';
import { checkTweetText } from '../../src/domain/text';

export interface CeilingTweet {
  id: string;
  authorId: string;
  authorHandle: string;
  text: string;
  createdAt: string;
}

const AUTHOR = { id: '00000000-0000-7000-8000-000000000001', handle: 'ceiling' };

/**
 * The ingest ceilings: Koa with Warren's own body parser and validation for
 * `POST /tweets`, answering 201 with the tweet, and no database. `afterValidate`
 * is what the handler does before answering (nothing for the bare ceiling,
 * one confirmed publish for the hand-written one). `GET /metrics` serves
 * prom-client's process metrics, as Warren's API does, so the benchmark
 * reads every server's event-loop delay the same way.
 */
export async function serveCeiling(port: number, afterValidate: (tweet: CeilingTweet) => Promise<void>): Promise<void> {
  const app = new Koa<ApiState>();
  app.use(jsonBody(65536));
  const router = new Router<ApiState>();
  router.post('/tweets', async (ctx) => {
    const input = parseRequest(createTweetBody, ctx.state.body);
    const checked = checkTweetText(input.text);
    if (!checked.ok) {
      ctx.status = 400;
      ctx.body = { error: { code: 'validation', message: checked.message } };
      return;
    }
    const tweet: CeilingTweet = { id: newId(), authorId: AUTHOR.id, authorHandle: AUTHOR.handle, text: checked.text, createdAt: new Date().toISOString() };
    await afterValidate(tweet);
    ctx.status = 201;
    ctx.body = tweet;
  });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  router.get('/metrics', async (ctx) => {
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  });
  app.use(router.routes());
  const handle = app.callback();
  const server = http.createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  process.stdout.write(JSON.stringify({ listening: port }) + '\n');
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
