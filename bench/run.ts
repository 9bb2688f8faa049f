/**
 * npm run bench: modelwatch (and modelwatch running each request alone) against the bare server and the floor server (closed loop, and paced at one rate), the in-process cost of monitoring, the cost
 * of a scrape, memory over a million rows and the overload guard, all in one run, as ratios
 * where there is something to compare with. Not part of npm test: its numbers depend on the machine.
 */
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadRows } from '../src/simulate.js';
import { root } from '../test/helpers/cli.js';
import { measureClassifierMonitor } from './classifier-monitor.js';
import { measureInProcess, type InProcessResult } from './in-process.js';
import { median, startServer, type Server } from './load.js';
import { rssGrowth } from './memory.js';
import { startupTimes } from './startup.js';
import { overload, type Latencies } from './overload.js';
import { bodies, compare, type Comparison, type Throughput } from './throughput.js';
import { writeWideModel } from './wide-model.js';

const defaults = {
  seconds: '4',
  rounds: '7',
  warmup: '3',
  connections: '16',
  'record-requests': '200000',
  'overload-connections': '256',
  'overload-seconds': '10',
};
const { values: flags } = parseArgs({
  options: Object.fromEntries(Object.entries(defaults).map(([name, value]) => [name, { type: 'string' as const, default: value }])),
});
const num = (name: keyof typeof defaults) => Number(flags[name]);
const rerun = `npm run bench -- ${Object.keys(defaults).map((name) => `--${name} ${flags[name]}`).join(' ')}`;

const diabetesDir = join(root, 'models/diabetes');
const work = await mkdtemp(join(tmpdir(), 'modelwatch-bench-'));
/** modelwatch with --coalesce-rows 0: what the monitoring costs where requests never run together. */
const ALONE = 'modelwatch, requests alone';
const batchUnit = (batch: number) => (batch === 1 ? 'req' : 'rows');
const print = (line = '') => process.stdout.write(`${line}\n`);
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const mb = (bytes: number) => `${fmt(bytes / 2 ** 20, 1)} MB`;
const modelwatch = (name: string, csv: string, extra: string[] = []) =>
  startServer(name, 'src/main.ts', ['serve', '--csv', join(work, csv), '--log-level', 'warn', ...extra]);

try {
  print(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, ${fmt(totalmem() / 2 ** 30, 1)} GiB, node ${process.version}, ${process.platform}; load average at start ${loadavg().map((l) => fmt(l, 1)).join(' ')}`);

  // In-process first, before any server competes for the cores.
  const wideDir = await mkdtemp(join(work, 'wide200-'));
  await writeWideModel(wideDir, 200);
  const inProcess: InProcessResult[] = [];
  for (const [dir, requests] of [[diabetesDir, num('record-requests')], [wideDir, num('record-requests') / 4]] as const) {
    inProcess.push(await measureInProcess(dir, join(work, `record-${inProcess.length}.csv`), requests));
  }

  const startup = await startupTimes(['--version'], 10);

  const { rows } = await loadRows(join(diabetesDir, 'train.csv'), 'target');
  const classifierNsPerRow = measureClassifierMonitor(diabetesDir, rows);
  // A/B/C/D rounds: modelwatch, the bare server (the goal), the floor (modelwatch's response shape,
  // ids included, requests run together as modelwatch runs them), and modelwatch running each request alone.
  const servers: Server[] = [
    await modelwatch('modelwatch', 'http.csv'),
    await modelwatch(ALONE, 'alone.csv', ['--coalesce-rows', '0']),
    await startServer('bare', 'bench/bare-server.ts', []),
    await startServer('floor', 'bench/floor-server.ts', []),
  ];
  const http = new Map<number, Comparison>();
  let paced: { rate: number; comparison: Comparison };
  try {
    const options = { connections: num('connections'), warmupSeconds: num('warmup'), seconds: num('seconds'), rounds: num('rounds') };
    for (const batch of [1, 64]) http.set(batch, await compare(servers, bodies(rows, batch), { batch, ...options }));
    // As fast as each answers, a slower server also runs fewer requests per turn of its event loop,
    // so the loop's own cost per request grows with the gap: at one offered rate for all, CPU per
    // request is what each request costs. Half the bare server's rate leaves every server idle time.
    const rate = Math.round(median(http.get(1)!.rounds.map((byServer) => byServer.get('bare')!.requestsPerSecond)) / 2);
    paced = { rate, comparison: await compare(servers, bodies(rows, 1), { batch: 1, ...options, rate }) };
  } finally {
    for (const server of servers) await server.stop();
  }

  // A fresh server, so its memory holds only these rows.
  const fresh = await modelwatch('modelwatch (memory)', 'memory.csv');
  const memory = await rssGrowth(fresh, bodies(rows, 50), 50, [10_000, 100_000, 500_000, 1_000_000]).finally(() => fresh.stop());

  const guarded = await modelwatch('modelwatch (overload)', 'overload.csv');
  const shed = await overload(guarded, bodies(rows, 1024, 1)[0]!, num('overload-connections'), num('overload-seconds'), rows[0]!).finally(() => guarded.stop());

  print();
  // Ratios subject/reference: throughput (higher is better), server CPU per request and p99 (lower is better).
  const ratios = (byServer: Map<string, Throughput>, subject: string, reference: string, batch: number) => {
    const mw = byServer.get(subject)!;
    const ref = byServer.get(reference)!;
    return {
      throughput: batch === 1 ? mw.requestsPerSecond / ref.requestsPerSecond : mw.rowsPerSecond / ref.rowsPerSecond,
      cpu: mw.cpuMicrosPerRequest / ref.cpuMicrosPerRequest,
      p99: mw.p99 / ref.p99,
    };
  };
  for (const [subject, reference] of [['modelwatch', 'bare'], ['modelwatch', 'floor'], [ALONE, 'bare']] as const) {
    print(`${subject} / ${reference}, ${num('rounds')} rounds of ${num('seconds')} s each (A/B/C/D in turn), ${num('connections')} connections; rate is req/s at batch 1, rows/s at batch 64:`);
    print(`| batch | round | rate ratio | server CPU/request ratio | p99 ratio | ${subject} rate | ${reference} rate | ${subject} CPU us/req | ${reference} CPU us/req | ${subject} p99 ms | ${reference} p99 ms |`);
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const [batch, { rounds }] of http) {
      const each = rounds.map((byServer) => ratios(byServer, subject, reference, batch));
      rounds.forEach((byServer, round) => {
        const mw = byServer.get(subject)!;
        const ref = byServer.get(reference)!;
        const rate = (t: Throughput) => (batch === 1 ? t.requestsPerSecond : t.rowsPerSecond);
        const r = each[round]!;
        print(
          `| ${batch} | ${round + 1} | ${fmt(r.throughput, 2)} | ${fmt(r.cpu, 2)} | ${fmt(r.p99, 2)} | ${fmt(rate(mw))} | ${fmt(rate(ref))} | ` +
            `${fmt(mw.cpuMicrosPerRequest, 1)} | ${fmt(ref.cpuMicrosPerRequest, 1)} | ${fmt(mw.p99, 2)} | ${fmt(ref.p99, 2)} |`,
        );
      });
      const med = (pick: (t: Throughput) => number) => fmt(median(rounds.map((byServer) => pick(byServer.get(subject)!))), 2);
      const medRef = (pick: (t: Throughput) => number) => fmt(median(rounds.map((byServer) => pick(byServer.get(reference)!))), 2);
      const rate = (t: Throughput) => (batch === 1 ? t.requestsPerSecond : t.rowsPerSecond);
      print(
        `| ${batch} | **median** (${batchUnit(batch)}/s) | **${fmt(median(each.map((r) => r.throughput)), 2)}** | **${fmt(median(each.map((r) => r.cpu)), 2)}** | **${fmt(median(each.map((r) => r.p99)), 2)}** | ` +
          `${med(rate)} | ${medRef(rate)} | ${med((t) => t.cpuMicrosPerRequest)} | ${medRef((t) => t.cpuMicrosPerRequest)} | ${med((t) => t.p99)} | ${medRef((t) => t.p99)} |`,
      );
      const non200 = [...http.get(batch)!.overall].filter(([, t]) => t.non200 > 0);
      if (non200.length > 0) print(`| ${batch} | non-200 answers: ${non200.map(([name, t]) => `${name} ${t.non200}`).join(', ')} | | | | | | | | | |`);
    }
    const each = paced.comparison.rounds.map((byServer) => ratios(byServer, subject, reference, 1));
    const pacedCpu = (name: string) => fmt(median(paced.comparison.rounds.map((byServer) => byServer.get(name)!.cpuMicrosPerRequest)), 1);
    print(
      `| 1, paced at ${fmt(paced.rate)} req/s | **median** of ${each.length} | ${fmt(median(each.map((r) => r.throughput)), 2)} | **${fmt(median(each.map((r) => r.cpu)), 2)}** | ` +
        `**${fmt(median(each.map((r) => r.p99)), 2)}** | | | ${pacedCpu(subject)} | ${pacedCpu(reference)} | | |`,
    );
    print();
  }
  print('| in-process (CPU time) | 10 features | 200 features | goal |');
  print('| --- | --- | --- | --- |');
  const [narrow, wide] = inProcess as [InProcessResult, InProcessResult];
  print(`| Monitor.record ns/row (features, bins, windows, prediction histogram), batch 64 | ${fmt(narrow.monitorNsPerRow)} | ${fmt(wide.monitorNsPerRow)} | < 500 at 10 |`);
  print(`| Monitor.record ns/row of a 3-class classifier with probabilities, batch 64, median of 5 rounds | ${fmt(classifierNsPerRow)} | | < 300 at 10 |`);
  print(`| whole record path ns/row (+ id, CSV row, feedback store, counters), batch 64 | ${fmt(narrow.nsPerRow[64]!)} | ${fmt(wide.nsPerRow[64]!)} | |`);
  print(`| whole record path ns/row, batch 1 (= per request) | ${fmt(narrow.nsPerRow[1]!)} | ${fmt(wide.nsPerRow[1]!)} | |`);
  print(`| GET /metrics ms over HTTP as Prometheus asks (OpenMetrics), median of 100 (wall) | ${fmt(narrow.scrapeMs, 2)} | ${fmt(wide.scrapeMs, 2)} | < 2 at 10, < 5 at 200 |`);
  print(`| GET /metrics ms of CPU, mean of 100 | ${fmt(narrow.scrapeCpuMs, 2)} | ${fmt(wide.scrapeCpuMs, 2)} | |`);
  print();
  print('| memory (fresh server, batches of 50 rows) | RSS | goal |');
  print('| --- | --- | --- |');
  for (const { rows: n, bytes } of memory.rss) print(`| after ${fmt(n)} rows | ${mb(bytes)} | |`);
  print(`| growth from 10,000 to 1,000,000 rows | ${mb(memory.rss.at(-1)!.bytes - memory.rss[0]!.bytes)} | < 20 MB |`);
  if (memory.non200 > 0) print(`| non-200 answers | ${memory.non200} | 0 |`);
  print();
  print('| start-up of the compiled CLI, wall ms over 10 runs | min | median | max | goal |');
  print('| --- | --- | --- | --- | --- |');
  print(`| modelwatch --version | ${fmt(startup.minMs)} | ${fmt(startup.medianMs)} | ${fmt(startup.maxMs)} | < 500 |`);
  print();
  const statuses = (s: Record<string, number>) => Object.entries(s).map(([code, n]) => `${n} x ${code}`).join(', ');
  print(`overload: ${num('overload-connections')} connections sending batches of 1024 rows for ${num('overload-seconds')} s (default guard options); npm run bench:storm repeats it`);
  print(`| route | answers | p50 ms | p99 ms | max ms |`);
  print('| --- | --- | --- | --- | --- |');
  const row = (name: string, p: Latencies) => print(`| ${name} | ${statuses(p.statuses)} | ${fmt(p.p50Ms, 1)} | ${fmt(p.p99Ms, 1)} | ${fmt(p.maxMs, 1)} |`);
  row(`POST /predict (load, 1024 rows${shed.storm.errors ? `, ${shed.storm.errors} errors` : ''})`, shed.storm);
  for (const [name, p] of Object.entries(shed.probes)) row(`${name} (probe every 100 ms)`, p);
  const seen503 = (shed.storm.statuses['503'] ?? 0) + (shed.probes['POST /predict (1 row)']?.statuses['503'] ?? 0);
  print(
    `model_requests_total{outcome="overloaded"} gained ${shed.overloadedCounted}; the clients saw ${seen503} answers 503 (up to ${num('overload-connections')} more were ` +
      `in flight when the load generator stopped and closed its connections); Retry-After: ${shed.retryAfter ?? '(no 503 seen)'}`,
  );
  print();
  print(`rerun: ${rerun}`);
} finally {
  await rm(work, { recursive: true, force: true });
}
