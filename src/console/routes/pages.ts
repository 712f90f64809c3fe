/** @file
 * The console's server-rendered pages: sign-in with an operator token
 * (into a session cookie), the parked messages with search and filters,
 * one message in full with replay and discard forms, the audit log. Every
 * page needs a session; every form carries the session's CSRF token and is
 * refused (403) without it; a viewer's session is refused every change.
 */
import { Router } from '@koa/router';
import type { Middleware } from 'koa';
import { ForbiddenError, NotFoundError, ValidationError } from '../../domain/errors';
import { discardBody, discardSelected, replayBody, replaySelected, startReplay, type ActionDeps, type ActionResult } from '../actions';
import { findAction } from '../actionProgress';
import { actionPage } from '../actionPage';
import { listAudit } from '../audit';
import type { ConsoleAppDeps, ConsoleContext, ConsoleState } from '../context';
import { formBody } from '../formBody';
import type { OverviewCollector } from '../overview';
import { overviewBody } from '../overviewPage';
import { html, page, type Html } from '../html';
import { findOperator } from '../operatorTokens';
import { exportFileName, exportSelected } from '../exportSelection';
import { countSelected, findParked, searchParked } from '../parkedIndex';
import { decodePageCursor, parkedFilter, parkedListQuery } from '../parkedQuery';
import { csrfMatches, csrfTokenOf, endSession, findSession, SESSION_COOKIE, SESSION_TTL_MS, startSession } from '../sessions';

const FORM_LIMIT_BYTES = 16 * 1024;
/** The list's filters a replay-all form carries. */
const FILTER_FIELDS = ['q', 'queue', 'kind', 'reason', 'from', 'to'] as const;
/** The overview reloads itself (no script runs on these pages): the broker's figures move every 5 s. */
const OVERVIEW_REFRESH_SECONDS = 10;

function signedIn(ctx: ConsoleContext) {
  const op = ctx.state.operator!;
  return { name: op.name, role: op.role, csrf: csrfTokenOf(ctx.state.session!) };
}

function csrfField(ctx: ConsoleContext): Html {
  return html`<input type="hidden" name="csrf" value="${csrfTokenOf(ctx.state.session!)}" />`;
}

function render(ctx: ConsoleContext, title: string, body: Html, status = 200, refreshSeconds?: number): void {
  ctx.status = status;
  ctx.type = 'text/html; charset=utf-8';
  ctx.set('cache-control', 'no-store');
  // The pages run no script and load nothing from elsewhere; nothing may frame them.
  ctx.set('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'");
  ctx.body = ctx.state.operator && ctx.state.session ? page(title, body, signedIn(ctx), refreshSeconds) : page(title, body);
}

export function pageRoutes(deps: ConsoleAppDeps, actionDeps: () => ActionDeps, overview: () => OverviewCollector): Router<ConsoleState> {
  const router = new Router<ConsoleState>();
  const forms = formBody(FORM_LIMIT_BYTES);

  /** A page needs a live session; a form also its CSRF token, and the operator role unless it only signs out. */
  const session: Middleware<ConsoleState> = async (ctx, next) => {
    const secret = ctx.cookies.get(SESSION_COOKIE);
    const operator = await findSession(deps.db, secret, deps.now());
    if (!operator || !secret) {
      if (ctx.method === 'GET') return ctx.redirect('/login');
      throw new ForbiddenError('sign in first');
    }
    ctx.state.operator = operator;
    ctx.state.session = secret;
    if (ctx.method === 'POST') {
      if (!csrfMatches(secret, ctx.state.form?.csrf))
        throw new ForbiddenError('this form is not from this session (CSRF token missing or wrong); reload the page');
      if (operator.role !== 'operator' && ctx.path !== '/logout')
        throw new ForbiddenError(`${operator.name} is a viewer: only an operator token may change anything`);
    }
    await next();
  };

  router.get('/login', (ctx) => {
    render(
      ctx,
      'Sign in',
      html`<form method="post" action="/login">
          <label>Operator token <input name="token" type="password" size="60" autocomplete="off" required /></label> <button>Sign in</button>
        </form>
        <p class="muted">Tokens come from <code>warren console token create --role viewer|operator</code>.</p>`,
    );
  });

  router.post('/login', forms, async (ctx) => {
    const operator = await findOperator(deps.db, ctx.state.form?.token ?? '');
    if (!operator)
      return render(
        ctx,
        'Sign in',
        html`<p>That is not a valid operator token.</p>
          <p><a href="/login">Try again</a></p>`,
        401,
      );
    const secret = await startSession(deps.db, operator, deps.now());
    ctx.cookies.set(SESSION_COOKIE, secret, { httpOnly: true, sameSite: 'strict', path: '/', maxAge: SESSION_TTL_MS, overwrite: true });
    ctx.redirect('/');
  });

  router.post('/logout', forms, session, async (ctx) => {
    await endSession(deps.db, ctx.state.session!);
    ctx.cookies.set(SESSION_COOKIE, '', { httpOnly: true, sameSite: 'strict', path: '/', maxAge: 0, overwrite: true });
    ctx.redirect('/login');
  });

  router.get('/', session, async (ctx) => {
    const parsed = parkedListQuery.safeParse(Object.fromEntries(Object.entries(ctx.query).filter(([, v]) => v !== '')));
    const query = parsed.success ? parsed.data : parkedListQuery.parse({});
    const problem = parsed.success ? '' : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    const after = query.before ? decodePageCursor(query.before) : undefined;
    const { items, nextCursor } = await searchParked(deps.db, query, after);
    const selected = (await countSelected(deps.db, query)).total;
    const value = (k: string) => (typeof ctx.query[k] === 'string' ? ctx.query[k] : '');
    const next = new URLSearchParams(Object.entries(ctx.query).filter((e): e is [string, string] => typeof e[1] === 'string' && e[0] !== 'before'));
    if (nextCursor) next.set('before', nextCursor);
    const filterOnly = new URLSearchParams([...next].filter(([k, v]) => k !== 'before' && k !== 'limit' && v !== ''));
    render(
      ctx,
      'Parked messages',
      html`<form method="get" action="/">
          <input name="q" placeholder="words in body or headers" value="${value('q')}" size="30" />
          <input name="queue" placeholder="queue" value="${value('queue')}" />
          <select name="kind">
            ${['', 'permanent', 'exhausted', 'crash-loop', 'unknown'].map((k) => html`<option value="${k}" ${value('kind') === k ? html` selected` : ''}>${k || 'any kind'}</option>`)}
          </select>
          <input name="reason" placeholder="reason contains" value="${value('reason')}" />
          <input name="from" placeholder="from (ISO-8601)" value="${value('from')}" /> <input name="to" placeholder="to" value="${value('to')}" />
          <button>Search</button>
        </form>
        ${problem ? html`<p class="again">${problem}</p>` : ''}
        <table>
          <tr>
            <th>Parked</th>
            <th>Queue</th>
            <th>Type</th>
            <th>Kind</th>
            <th>Attempts</th>
            <th>Reason</th>
            <th>Message</th>
          </tr>
          ${items.map(
            (m) =>
              html`<tr>
                <td>${m.parkedAt}</td>
                <td>${m.queue}</td>
                <td>${m.type ?? ''}</td>
                <td>${m.kind}</td>
                <td>${m.attempts ?? '-'}</td>
                <td>${m.reason ?? ''}${m.failedAgainAfterReplay ? html` <span class="again">failed again after replay (${m.replayCount})</span>` : ''}</td>
                <td><a href="/messages/${encodeURIComponent(m.id)}">${m.messageId ?? m.id}</a></td>
              </tr>`,
          )}
        </table>
        ${
          items.length > 0 && ctx.state.operator!.role === 'operator' && (query.status ?? 'parked') === 'parked'
            ? html`<form method="post" action="/replay" id="replay-selection">
                ${csrfField(ctx)}${FILTER_FIELDS.filter((k) => value(k) !== '').map((k) => html`<input type="hidden" name="${k}" value="${value(k)}" />`)}
                <button>Replay all ${String(selected)} that match</button>
                <span class="muted">to the queue each came from; messages that failed again after a replay are left out</span>
              </form>`
            : ''
        }
        ${items.length === 0 ? html`<p class="muted">Nothing parked matches.</p>` : html`<p><a class="button" href="/export?${filterOnly.toString()}">Export all that match as JSON</a></p>`}
        ${nextCursor ? html`<p><a href="/?${next.toString()}">Older</a></p>` : ''}`,
    );
  });

  router.get('/export', session, async (ctx) => {
    const parsed = parkedFilter.safeParse(Object.fromEntries(Object.entries(ctx.query).filter(([, v]) => v !== '')));
    if (!parsed.success)
      throw new ValidationError(
        'invalid query',
        parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      );
    const now = deps.now();
    const doc = await exportSelected(deps.db, ctx.state.operator!, parsed.data, deps.config.console.maxPerAction, now);
    ctx.set('cache-control', 'no-store');
    ctx.set('content-disposition', `attachment; filename="${exportFileName(now)}"`);
    ctx.type = 'application/json';
    ctx.body = `${JSON.stringify(doc, null, 2)}\n`;
  });

  router.get('/messages/:id', session, async (ctx) => {
    const m = await findParked(deps.db, ctx.params.id!);
    if (!m) throw new NotFoundError('parked message');
    const body = m.body === undefined ? m.bodyText : JSON.stringify(m.body, null, 2);
    const actions =
      ctx.state.operator!.role === 'operator' && m.status === 'parked'
        ? html`<h2>Actions</h2>
            <form method="post" action="/messages/${encodeURIComponent(m.id)}/replay">
              ${csrfField(ctx)}<label><input type="checkbox" name="allowStale" value="true" /> even if older than the inbox retention</label>
              <button>Replay to ${m.originalQueue ?? m.queue}</button>
            </form>
            <form method="post" action="/messages/${encodeURIComponent(m.id)}/discard">
              ${csrfField(ctx)}<input name="reason" placeholder="why it is discarded" required size="40" /> <button>Discard</button>
            </form>`
        : '';
    render(
      ctx,
      `Parked message ${m.messageId ?? m.id}`,
      html`<table>
          <tr>
            <th>Queue</th>
            <td>${m.queue}</td>
          </tr>
          <tr>
            <th>Type</th>
            <td>${m.type ?? ''}</td>
          </tr>
          <tr>
            <th>Kind</th>
            <td>${m.kind}</td>
          </tr>
          <tr>
            <th>Attempts</th>
            <td>${m.attempts ?? '-'}</td>
          </tr>
          <tr>
            <th>Reason</th>
            <td>${m.reason ?? ''}</td>
          </tr>
          <tr>
            <th>First / last failure</th>
            <td>${m.firstFailure ?? '-'} / ${m.lastFailure ?? '-'}</td>
          </tr>
          <tr>
            <th>Status</th>
            <td>
              ${m.status}${m.statusBy ? html` by ${m.statusBy} at ${m.statusAt}` : ''}${m.failedAgainAfterReplay ? html` <span class="again">failed again after replay (${m.replayCount})</span>` : ''}
            </td>
          </tr>
        </table>
        <h2>Body</h2>
        <pre>${body}</pre>
        <h2>Properties</h2>
        <pre>${JSON.stringify(m.properties, null, 2)}</pre>
        <h2>Headers</h2>
        <pre>${JSON.stringify(m.headers, null, 2)}</pre>
        ${actions}`,
    );
  });

  const resultPage = (ctx: ConsoleContext, what: string, id: string, r: ActionResult) =>
    render(
      ctx,
      what,
      html`<p>
          ${r.error ? `Stopped: ${r.error}. ` : ''}Taken: ${r.taken} of
          ${r.selected}${r.stale ? html`; ${r.stale} left parked as older than the inbox retention` : ''}${r.notFound ? html`; ${r.notFound} no longer in its DLQ` : ''}.
        </p>
        <p><a href="/messages/${encodeURIComponent(id)}">Back to the message</a> · <a href="/">Parked messages</a></p>`,
      r.error ? 502 : 200,
    );

  router.post('/messages/:id/replay', forms, session, async (ctx) => {
    const id = ctx.params.id!;
    const result = await replaySelected(actionDeps(), ctx.state.operator!, replayBody.parse({ ids: [id], allowStale: ctx.state.form?.allowStale === 'true' }));
    resultPage(ctx, 'Replay', id, result);
  });

  router.post('/replay', forms, session, async (ctx) => {
    const form = ctx.state.form ?? {};
    const filter = Object.fromEntries(FILTER_FIELDS.filter((k) => (form[k] ?? '') !== '').map((k) => [k, form[k]]));
    const parsed = replayBody.safeParse({ filter });
    if (!parsed.success)
      throw new ValidationError(
        'invalid selection',
        parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      );
    // A bulk replay runs on after this answer; its page follows it (actionPage.ts).
    const { started, finished } = await startReplay(actionDeps(), ctx.state.operator!, parsed.data);
    finished.catch((err: unknown) => deps.log.error({ err, actionId: started.actionId }, 'console replay failed'));
    ctx.status = 303;
    ctx.redirect(`/actions/${encodeURIComponent(started.actionId)}`);
  });

  router.get('/actions/:id', session, async (ctx) => {
    const action = await findAction(deps.db, ctx.params.id!, deps.now());
    if (!action) throw new NotFoundError('action');
    const view = actionPage(action);
    render(ctx, view.title, view.body, 200, view.refreshSeconds);
  });

  router.post('/messages/:id/discard', forms, session, async (ctx) => {
    const id = ctx.params.id!;
    const parsed = discardBody.safeParse({ ids: [id], reason: ctx.state.form?.reason ?? '' });
    if (!parsed.success) throw new ValidationError('say why the message is discarded', [{ path: 'reason', message: 'required' }]);
    resultPage(ctx, 'Discard', id, await discardSelected(actionDeps(), ctx.state.operator!, parsed.data));
  });

  router.get('/overview', session, async (ctx) => {
    render(ctx, 'Overview', overviewBody(await overview().collect(deps.now())), 200, OVERVIEW_REFRESH_SECONDS);
  });

  router.get('/audit', session, async (ctx) => {
    const entries = await listAudit(deps.db, { limit: 100 });
    render(
      ctx,
      'Audit log',
      html`<table>
        <tr>
          <th>When</th>
          <th>Who</th>
          <th>Action</th>
          <th>Selection</th>
          <th>Count</th>
          <th>Outcome</th>
        </tr>
        ${entries.map(
          (e) =>
            html`<tr>
              <td>${e.at}</td>
              <td>${e.actor} (${e.role})</td>
              <td>${e.action}</td>
              <td><code>${JSON.stringify(e.selection)}</code></td>
              <td>${e.count}</td>
              <td>${e.outcome}</td>
            </tr>`,
        )}
      </table>`,
    );
  });

  return router;
}
