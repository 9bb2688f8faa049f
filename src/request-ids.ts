import { randomUuid } from './monitor/uuid-index.js';

/**
 * A request's id (the CSV row's, the x-modelwatch-id header's) and how its rows are named: a
 * single row by the request id itself, the rows of a batch as `<request id>.<row>` (even a batch
 * of one row), so a batch answer carries one id however many rows it has.
 */
export interface RecordedIds {
  requestId: string;
  rows: number;
  batch: boolean;
}

export function newIds(rows: number, batch: boolean): RecordedIds {
  return { requestId: randomUuid(), rows, batch };
}

/** The id of each row: for what keys rows by id (a shadow's pending labels), and for clients that label a batch (simulate). */
export function rowIds({ requestId, rows, batch }: RecordedIds): string[] {
  const ids = new Array<string>(rows);
  if (!batch) ids[0] = requestId;
  else for (let r = 0; r < rows; r++) ids[r] = `${requestId}.${r}`;
  return ids;
}
