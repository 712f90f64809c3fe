import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import { traceIdFor } from '../../../src/api/middleware/requestId';
import { prettyFactory, type PrettyOptions } from 'pino-pretty';
import { projectRoot } from '../../../src/config';
import { createLogger, deliveryLogger, logFormat, prettyTransport, useColor } from '../../../src/log';

const ANSI = /\u001b\[/;

describe('logs', () => {
  it('are pretty at a terminal or in development, JSON otherwise, and WARREN_LOG_FORMAT decides over both', () => {
    expect(logFormat({}, true)).to.equal('pretty');
    expect(logFormat({ NODE_ENV: 'development' }, false)).to.equal('pretty');
    expect(logFormat({}, false)).to.equal('json');
    expect(logFormat({ NODE_ENV: 'production' }, false)).to.equal('json');
    expect(logFormat({ WARREN_LOG_FORMAT: 'json' }, true)).to.equal('json');
    expect(logFormat({ WARREN_LOG_FORMAT: 'pretty', NODE_ENV: 'production' }, false)).to.equal('pretty');
  });

  it('are coloured only at a terminal, and never while NO_COLOR is set (to anything but the empty string)', () => {
    expect(useColor({}, true)).to.equal(true);
    expect(useColor({}, false)).to.equal(false);
    expect(useColor({ NO_COLOR: '1' }, true)).to.equal(false);
    expect(useColor({ NO_COLOR: 'false' }, true)).to.equal(false);
    expect(useColor({ NO_COLOR: '' }, true)).to.equal(true);
    // What pino-pretty makes of the transport's options, line by line.
    const line = JSON.stringify({ level: 30, time: 0, pid: 1, msg: 'hello' });
    const printed = (env: NodeJS.ProcessEnv): string => {
      const transport = prettyTransport(env, true);
      expect(transport?.target).to.equal('pino-pretty');
      const { destination: _stdout, ...options } = transport!.options as PrettyOptions & { destination: number };
      return prettyFactory(options)(line);
    };
    expect(printed({})).to.match(ANSI);
    expect(printed({ NO_COLOR: '1' }))
      .to.include('hello')
      .and.not.match(ANSI);
  });

  it('are JSON when pino-pretty is not installed (a production install), whatever the format asked', () => {
    expect(prettyTransport({ WARREN_LOG_FORMAT: 'pretty' }, true, () => false)).to.equal(undefined);
    expect(prettyTransport({ WARREN_LOG_FORMAT: 'json' }, true, () => true)).to.equal(undefined);
    expect(prettyTransport({}, false, () => true)).to.equal(undefined);
    expect(prettyTransport({ WARREN_LOG_FORMAT: 'pretty' }, false, () => true)?.options).to.include({ colorize: false });
  });

  it('log JSON from a real process in which pino-pretty cannot be found, though asked to be pretty', () => {
    // The process a production install runs: require('pino-pretty') fails as it would there.
    const hide = `const M = require('module'); const r = M._resolveFilename; M._resolveFilename = function (req, ...a) { if (req === 'pino-pretty') throw Object.assign(new Error('not installed'), { code: 'MODULE_NOT_FOUND' }); return r.call(this, req, ...a); };`;
    const log = `const { createLogger } = require(${JSON.stringify(require.resolve('../../../src/log'))}); createLogger('api', 'info').info('hello');`;
    const run = spawnSync(process.execPath, ['-e', `${hide} ${log}`], {
      env: { PATH: process.env.PATH, WARREN_LOG_FORMAT: 'pretty' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.status, run.stderr).to.equal(0);
    expect(JSON.parse(run.stdout.trim())).to.include({ msg: 'hello', service: 'api', level: 30 });
  });

  it('put errors under err whole (type, message, stack): no log call in src logs only the message', () => {
    const src = path.join(projectRoot, 'src');
    const files = fs.readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    expect(files.length).to.be.greaterThan(50);
    const messageOnly = /\berr: *(?:\(?\w+(?: as Error\))?\??\.message\b|errorText\(|message\b)/;
    const offenders = files.flatMap((f) =>
      fs
        .readFileSync(path.join(src, f), 'utf8')
        .split('\n')
        .flatMap((line, i) => (messageOnly.test(line) ? [`${f}:${i + 1}: ${line.trim()}`] : [])),
    );
    expect(offenders).to.deep.equal([]);
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
        done();
      },
    });
    createLogger('api', 'info', stream).error({ err: new RangeError('out of range') }, 'failed');
    expect(lines[0]!.err).to.include({ type: 'RangeError', message: 'out of range' });
    expect((lines[0]!.err as { stack: string }).stack).to.match(/^RangeError: out of range\n\s+at /);
  });

  it("bind a delivery's correlation id as requestId and its traceparent's trace, and nothing a foreign header forges", () => {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
        done();
      },
    });
    const base = createLogger('worker-analytics', 'info', stream);
    deliveryLogger(base, { correlationId: 'abc', headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } }).info('one');
    deliveryLogger(base, { headers: { traceparent: 'x'.repeat(5000) } }).info('two');
    expect(lines[0]).to.include({ msg: 'one', requestId: 'abc', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', service: 'worker-analytics' });
    expect(lines[1]).to.not.have.any.keys('requestId', 'traceId');
  });

  it("start a request's trace from its request id when that is a UUID", () => {
    expect(traceIdFor('0192f0c4-7d3e-4b8a-9c1d-2e3f4a5b6c7d')).to.equal('0192f0c47d3e4b8a9c1d2e3f4a5b6c7d');
    expect(traceIdFor('0192F0C4-7D3E-4B8A-9C1D-2E3F4A5B6C7D')).to.equal('0192f0c47d3e4b8a9c1d2e3f4a5b6c7d');
    const random = traceIdFor('not-a-uuid');
    expect(random).to.match(/^[0-9a-f]{32}$/);
    expect(traceIdFor('not-a-uuid')).to.not.equal(random);
    expect(traceIdFor('00000000-0000-0000-0000-000000000000')).to.not.equal('0'.repeat(32));
  });
});
