import path from 'node:path';
import { expect } from 'chai';
import { ConfigError, projectRoot } from '../../../src/config';
import { loadConfig } from '../../../src/services';
import { loadDefinitions } from '../../../src/topology/definitions';
import { retryAttemptsFor } from '../../../src/workers/wiring';

/** `retry.attempts.<queue>`: a key that names no work queue stops the worker instead of leaving the real one on its default. */
describe('retry.attempts per work queue', () => {
  const defs = loadDefinitions(path.join(projectRoot, 'rabbitmq', 'definitions.json'));
  const base = loadConfig({});
  const withAttempts = (attempts: Record<string, number>) => ({ ...base, retry: { attempts } });

  it("gives each worker its queue's attempts", () => {
    const config = withAttempts({ 'analytics.tweets': 7, 'notifications.user-events': 3 });
    expect(retryAttemptsFor(config, 'analytics.tweets', defs)).to.equal(7);
    expect(retryAttemptsFor(config, 'notifications.user-events', defs)).to.equal(3);
  });

  it('stops with one line naming a misspelt key and the work queues there are', () => {
    const config = withAttempts({ 'analytics.tweets': 5, 'notifications.user-events': 5, 'analytics.tweet': 9 });
    expect(() => retryAttemptsFor(config, 'analytics.tweets', defs)).to.throw(
      ConfigError,
      'config: retry.attempts.analytics.tweet: analytics.tweet is not a work queue of the definitions file (analytics.tweets, notifications.user-events, timeline.events)',
    );
  });

  it("stops with one line when the worker's own queue has no entry", () => {
    const config = withAttempts({ 'notifications.user-events': 5 });
    expect(() => retryAttemptsFor(config, 'analytics.tweets', defs)).to.throw(ConfigError, /retry\.attempts\.analytics\.tweets: required/);
  });
});
