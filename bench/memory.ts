import { load, type Server } from './load.js';

export interface MemoryRun {
  rowsPerRequest: number;
  /** Resident memory of the server after each checkpoint's total of rows. */
  rss: { rows: number; bytes: number }[];
  non200: number;
}

/**
 * Resident memory of a fresh server as rows accumulate, sent in batches of `rowsPerRequest`:
 * everything per row and per request (windows, bins, ids, the feedback store, the CSV) must be
 * bounded, so past warm-up the figure may move only by noise.
 */
export async function rssGrowth(server: Server, bodies: string[], rowsPerRequest: number, checkpoints: number[]): Promise<MemoryRun> {
  let non200 = 0;
  let sent = 0;
  const rss: MemoryRun['rss'] = [];
  for (const rows of checkpoints) {
    const result = await load({ port: server.port, bodies, connections: 8, amount: (rows - sent) / rowsPerRequest });
    non200 += result.requests - (result.statusCounts['200'] ?? 0) + result.errors;
    sent = rows;
    rss.push({ rows, bytes: server.rssBytes() });
  }
  return { rowsPerRequest, rss, non200 };
}
