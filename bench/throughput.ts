import { load, percentile, type LoadResult, type Server } from './load.js';

export interface Throughput {
  requestsPerSecond: number;
  rowsPerSecond: number;
  p50: number;
  p99: number;
  non200: number;
  /** Server CPU time per answered request, us: unlike throughput, barely moved by other load on the machine. */
  cpuMicrosPerRequest: number;
}

export interface ThroughputOptions {
  batch: number;
  connections: number;
  warmupSeconds: number;
  seconds: number;
  rounds: number;
  /** Requests per second to send, the same to every server; default as fast as each answers. */
  rate?: number;
}

/** JSON bodies of `batch` rows each, cycling through the training rows. */
export function bodies(rows: number[][], batch: number, count = 32): string[] {
  return Array.from({ length: count }, (_, b) => {
    const picked = Array.from({ length: batch }, (_, r) => rows[(b * batch + r) % rows.length]!);
    return JSON.stringify(batch === 1 ? { features: picked[0] } : { instances: picked });
  });
}

interface Measured extends LoadResult {
  serverCpuSeconds: number;
}

function summarise(results: Measured[], batch: number): Throughput {
  const requests = results.reduce((n, r) => n + r.requests, 0);
  const seconds = results.reduce((s, r) => s + r.seconds, 0);
  const latencies = Float64Array.from(results.flatMap((r) => Array.from(r.latencies))).sort();
  const non200 = results.reduce((n, r) => n + r.errors + Object.entries(r.statusCounts).reduce((m, [code, c]) => m + (code === '200' ? 0 : c), 0), 0);
  return {
    requestsPerSecond: requests / seconds,
    rowsPerSecond: (requests * batch) / seconds,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    non200,
    cpuMicrosPerRequest: (results.reduce((s, r) => s + r.serverCpuSeconds, 0) / requests) * 1e6,
  };
}

/**
 * Each server in turn, A/B/A/B..., so drift in the machine's load (other processes, thermal)
 * falls on both alike. Each server is warmed up first; only the timed rounds count.
 */
export interface Comparison {
  /** Over all timed rounds together, by server name. */
  overall: Map<string, Throughput>;
  /** One map a round, by server name. */
  rounds: Map<string, Throughput>[];
}

export async function compare(servers: Server[], body: string[], options: ThroughputOptions): Promise<Comparison> {
  const run = async (server: Server, duration: number): Promise<Measured> => {
    const cpuBefore = server.cpuSeconds();
    const result = await load({ port: server.port, bodies: body, connections: options.connections, duration, rate: options.rate });
    return { ...result, serverCpuSeconds: server.cpuSeconds() - cpuBefore };
  };
  for (const server of servers) await run(server, options.warmupSeconds);
  const results = new Map<string, Measured[]>(servers.map((s) => [s.name, []]));
  for (let round = 0; round < options.rounds; round++) {
    for (const server of servers) results.get(server.name)!.push(await run(server, options.seconds));
  }
  return {
    overall: new Map(servers.map((s) => [s.name, summarise(results.get(s.name)!, options.batch)])),
    rounds: Array.from({ length: options.rounds }, (_, round) => new Map(servers.map((s) => [s.name, summarise([results.get(s.name)![round]!], options.batch)]))),
  };
}
