/** @file HTML for the console's pages: a tagged template that escapes every value it is given, and the page layout. */

/** Markup that is already safe (built by `html`). */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function piece(value: unknown): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(piece).join('');
  return escapeHtml(value);
}

/** `html\`<p>${text}</p>\``: every interpolated value is escaped unless it is Html itself (or an array of it). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  return new Html(strings.reduce((out, s, i) => out + s + (i < values.length ? piece(values[i]) : ''), ''));
}

export function page(title: string, body: Html, signedInAs?: { name: string; role: string; csrf: string }, refreshSeconds?: number): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>${title} · Warren console</title>
        ${refreshSeconds ? html`<meta http-equiv="refresh" content="${String(refreshSeconds)}" />` : ''}
        <style>
          body {
            font:
              14px/1.4 system-ui,
              sans-serif;
            margin: 1.5rem;
            color: #222;
          }
          table {
            border-collapse: collapse;
            width: 100%;
          }
          td,
          th {
            border-bottom: 1px solid #ddd;
            padding: 0.3rem 0.5rem;
            text-align: left;
            vertical-align: top;
          }
          th {
            background: #f4f4f4;
          }
          pre {
            background: #f7f7f7;
            padding: 0.75rem;
            overflow: auto;
          }
          nav a {
            margin-right: 1rem;
          }
          .again {
            color: #a40;
          }
          svg.chart {
            border: 1px solid #ddd;
            background: #fcfcfc;
          }
          .muted {
            color: #777;
          }
          form.inline {
            display: inline;
          }
          input,
          select,
          button {
            font: inherit;
          }
        </style>
      </head>
      <body>
        <nav>
          <strong>Warren console</strong> <a href="/overview">Overview</a><a href="/">Parked messages</a><a href="/audit">Audit log</a>
          ${
            signedInAs
              ? html`<span class="muted">${signedInAs.name} (${signedInAs.role})</span>
                  <form class="inline" method="post" action="/logout">
                    <input type="hidden" name="csrf" value="${signedInAs.csrf}" /><button>Sign out</button>
                  </form>`
              : ''
          }
        </nav>
        <h1>${title}</h1>
        ${body}
      </body>
    </html>`.text;
}
