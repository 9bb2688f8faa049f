import { Pool } from 'undici';
import { load, percentile, type LoadResult, type Server } from './load.js';

export interface OverloadRun {
  load: LoadResult;
  /** model_requests_total{outcome="overloaded"} gained during the run, as the server counts it. */
  overloadedCounted: number;
  /** Probes of each route during the run: answers by status, slowest answer in ms. */
  probes: Record<string, { statuses: Record<string, number>; maxMs: number; p50Ms: number }>;
  /** Retry-After of the first 503 a probe saw, if any. */
  retryAfter: string | undefined;
}

const overloaded = /^model_requests_total\{[^}]*outcome="overloaded"\} (\S+)$/m;

/**
 * A bounded overload: `connections` clients send big batches as fast as they are answered, while
 * one prober asks /healthz, /readyz, /metrics and a one-row /predict every 200 ms. Shows the guard
 * shedding predictions with 503 + Retry-After, counted as overloaded, while the probes still answer.
 */
export async function overload(server: Server, bodies: string[], connections: number, seconds: number, probeRow: number[]): Promise<OverloadRun> {
  const pool = new Pool(`http://127.0.0.1:${server.port}`, { connections: 4, headersTimeout: 30_000, bodyTimeout: 30_000 });
  const scrapeOverloaded = async () => {
    const response = await pool.request({ method: 'GET', path: '/metrics' });
    return Number(overloaded.exec(await response.body.text())?.[1]);
  };
  const before = await scrapeOverloaded();
  const probes: Record<string, { statuses: Record<string, number>; times: number[] }> = {};
  let retryAfter: string | undefined;
  let running = true;
  const probe = async (name: string, method: 'GET' | 'POST', path: string, body?: string) => {
    const started = performance.now();
    let status: string;
    try {
      const response = await pool.request({ method, path, body, headers: body ? { 'content-type': 'application/json' } : {} });
      await response.body.dump();
      status = String(response.statusCode);
      if (response.statusCode === 503 && retryAfter === undefined) retryAfter = String(response.headers['retry-after']);
    } catch (err) {
      status = (err as { code?: string }).code ?? 'network';
    }
    const entry = (probes[name] ??= { statuses: {}, times: [] });
    entry.statuses[status] = (entry.statuses[status] ?? 0) + 1;
    entry.times.push(performance.now() - started);
  };
  const prober = (async () => {
    while (running) {
      await Promise.all([
        probe('GET /healthz', 'GET', '/healthz'),
        probe('GET /readyz', 'GET', '/readyz'),
        probe('GET /metrics', 'GET', '/metrics'),
        probe('POST /predict (1 row)', 'POST', '/predict', JSON.stringify({ features: probeRow })),
      ]);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  const result = await load({ port: server.port, bodies, connections, duration: seconds });
  running = false;
  await prober;
  const after = await scrapeOverloaded();
  await pool.close();
  return {
    load: result,
    overloadedCounted: after - before,
    retryAfter,
    probes: Object.fromEntries(
      Object.entries(probes).map(([name, { statuses, times }]) => {
        const sorted = times.sort((a, b) => a - b);
        return [name, { statuses, maxMs: sorted.at(-1)!, p50Ms: percentile(sorted, 0.5) }];
      }),
    ),
  };
}
