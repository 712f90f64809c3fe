/** @file
 * The parks an export file lists, whichever wrote it: the console's export
 * (src/console/exportSelection.ts: each message with its queue and park
 * key) or `warren dlq export` (one queue; each message's body and
 * properties, from which its park key is computed as the index does). Pure.
 */
import type { MessageProperties } from 'amqplib';
import { z } from 'zod';
import { consoleExport } from './exportSelection';
import { parkRecord } from './parkRecord';
import { OperatorError } from '../ops/operatorError';

const cliExport = z.object({
  queue: z.string().min(1),
  messages: z.array(
    z.object({
      body: z.string(),
      bodyEncoding: z.enum(['utf8', 'base64']),
      properties: z.record(z.string(), z.unknown()),
    }),
  ),
});

export interface ExportedPark {
  queue: string;
  parkKey: string;
}

export function parksOfExport(text: string, file: string): ExportedPark[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new OperatorError(`warren dlq replay: ${file} is not JSON: ${(err as Error).message}`, 2);
  }
  const fromConsole = consoleExport.safeParse(json);
  if (fromConsole.success) return fromConsole.data.messages.map((m) => ({ queue: m.queue, parkKey: m.parkKey }));
  const fromCli = cliExport.safeParse(json);
  if (fromCli.success) {
    const { queue } = fromCli.data;
    return fromCli.data.messages.map((m) => ({
      queue,
      parkKey: parkRecord({ content: Buffer.from(m.body, m.bodyEncoding), properties: m.properties as unknown as MessageProperties, routingKey: queue })
        .parkKey,
    }));
  }
  throw new OperatorError(
    `warren dlq replay: ${file} is neither a console export nor a warren dlq export: ${fromConsole.error.issues[0]?.message ?? 'unknown shape'}`,
    2,
  );
}
