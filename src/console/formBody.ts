/** @file The console's forms: `application/x-www-form-urlencoded` bodies, read up to a limit into ctx.state.form. */
import type { Middleware } from 'koa';
import { PayloadTooLargeError, UnsupportedMediaTypeError } from '../api/middleware/errors';
import type { ConsoleState } from './context';

export function formBody(limitBytes: number): Middleware<ConsoleState> {
  return async (ctx, next) => {
    if (ctx.method !== 'POST') return next();
    const type = (ctx.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') throw new UnsupportedMediaTypeError();
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limitBytes) throw new PayloadTooLargeError(limitBytes);
      chunks.push(chunk);
    }
    ctx.state.form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    await next();
  };
}
