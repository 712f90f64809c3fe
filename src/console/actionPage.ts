/** @file
 * The page of one replay or discard: its progress while it runs (the page
 * reloads itself every second, as the pages run no script), then what it
 * did, in the same words as the answer of a replay that was waited for.
 */
import type { ActionProgressView } from './actionProgress';
import { html, type Html } from './html';

export function actionPage(a: ActionProgressView): { title: string; body: Html; refreshSeconds?: number } {
  const title = a.action === 'replay' ? 'Replay' : 'Discard';
  const links = html`<p><a href="/">Parked messages</a> · <a href="/audit">Audit log</a></p>`;
  if (a.state === 'running') {
    return {
      title,
      refreshSeconds: 1,
      body: html`<p id="progress">
          ${a.action === 'replay' ? 'Replaying' : 'Discarding'}: ${String(a.taken)} of ${String(a.total)} taken so
          far${a.stale ? html`, ${String(a.stale)} left parked as older than the inbox retention` : ''}.
        </p>
        <progress max="${String(a.total)}" value="${String(a.done)}"></progress>
        <p class="muted">Started by ${a.actor} at ${a.startedAt}; last progress at ${a.updatedAt}.</p>
        ${links}`,
    };
  }
  if (a.state === 'interrupted') {
    return {
      title,
      body: html`<p id="result" class="again">
          Interrupted: no progress since ${a.updatedAt}, after ${String(a.taken)} of ${String(a.total)} were taken (its console process stopped). What was not
          taken is still parked.
        </p>
        ${links}`,
    };
  }
  const verb = a.action === 'replay' ? 'Replayed' : 'Discarded';
  return {
    title,
    body: html`<p id="result">
        ${a.error ? `Stopped: ${a.error}. ` : ''}${verb} ${String(a.taken)} of
        ${String(a.total)}${a.stale ? html`; ${String(a.stale)} left parked as older than the inbox retention` : ''}${a.notFound ? html`; ${String(a.notFound)} no longer in its DLQ` : ''}.
      </p>
      ${links}`,
  };
}
