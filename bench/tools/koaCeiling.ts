import { serveCeiling } from './ceilingApp';

/** Ceiling 1: bare Koa `POST /tweets` (parse, validate, 201), no I/O. Input: `{ port }`. */
const { port } = JSON.parse(process.argv[2] ?? '{}') as { port: number };
void serveCeiling(port, async () => undefined);
