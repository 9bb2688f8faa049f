/**
 * npm run bench: modelwatch against the floor server, the in-process cost of monitoring, the cost
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
import { startServer, type Server } from './load.js';
import { rssGrowth } from './memory.js';
import { overload, type Latencies } from './overload.js';
import { bodies, compare, type Throughput } from './throughput.js';
import { writeWideModel } from './wide-model.js';

const defaults = {
  seconds: '5',
  rounds: '3',
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

  const { rows } = await loadRows(join(diabetesDir, 'train.csv'), 'target');
  const classifierNsPerRow = measureClassifierMonitor(diabetesDir, rows);
  const servers: Server[] = [await modelwatch('modelwatch', 'http.csv'), await startServer('floor', 'bench/floor-server.ts', [])];
  const http = new Map<number, Map<string, Throughput>>();
  try {
    for (const batch of [1, 64]) {
      http.set(batch, await compare(servers, bodies(rows, batch), {
        batch,
        connections: num('connections'),
        warmupSeconds: num('warmup'),
        seconds: num('seconds'),
        rounds: num('rounds'),
      }));
    }
  } finally {
    for (const server of servers) await server.stop();
  }

  // A fresh server, so its memory holds only these rows.
  const fresh = await modelwatch('modelwatch (memory)', 'memory.csv');
  const memory = await rssGrowth(fresh, bodies(rows, 50), 50, [10_000, 100_000, 500_000, 1_000_000]).finally(() => fresh.stop());

  const guarded = await modelwatch('modelwatch (overload)', 'overload.csv');
  const shed = await overload(guarded, bodies(rows, 1024, 1)[0]!, num('overload-connections'), num('overload-seconds'), rows[0]!).finally(() => guarded.stop());

  print();
  print('| POST /predict | modelwatch | floor | ratio | goal |');
  print('| --- | --- | --- | --- | --- |');
  for (const [batch, byServer] of http) {
    const mw = byServer.get('modelwatch')!;
    const floor = byServer.get('floor')!;
    const line = (what: string, a: number, b: number, digits: number, goal: string) =>
      print(`| batch ${batch}: ${what} | ${fmt(a, digits)} | ${fmt(b, digits)} | ${fmt(a / b, 2)} | ${goal} |`);
    line('requests/s', mw.requestsPerSecond, floor.requestsPerSecond, 0, batch === 1 ? '>= 0.90' : '');
    line('rows/s', mw.rowsPerSecond, floor.rowsPerSecond, 0, batch === 64 ? '>= 0.95' : '');
    line('p50 ms', mw.p50, floor.p50, 2, '');
    line('p99 ms', mw.p99, floor.p99, 2, '<= 1.20');
    line('server CPU us/request', mw.cpuMicrosPerRequest, floor.cpuMicrosPerRequest, 1, '');
    if (mw.non200 + floor.non200 > 0) print(`| batch ${batch}: non-200 answers | ${mw.non200} | ${floor.non200} | | 0 |`);
  }
  print();
  print('| in-process (CPU time) | 10 features | 200 features | goal |');
  print('| --- | --- | --- | --- |');
  const [narrow, wide] = inProcess as [InProcessResult, InProcessResult];
  print(`| Monitor.record ns/row (features, bins, windows, prediction histogram), batch 64 | ${fmt(narrow.monitorNsPerRow)} | ${fmt(wide.monitorNsPerRow)} | < 500 at 10 |`);
  print(`| Monitor.record ns/row of a 3-class classifier with probabilities, batch 64, median of 5 rounds | ${fmt(classifierNsPerRow)} | | < 300 at 10 |`);
  print(`| whole record path ns/row (+ ids, CSV row, feedback store, counters), batch 64 | ${fmt(narrow.nsPerRow[64]!)} | ${fmt(wide.nsPerRow[64]!)} | |`);
  print(`| whole record path ns/row, batch 1 (= per request) | ${fmt(narrow.nsPerRow[1]!)} | ${fmt(wide.nsPerRow[1]!)} | |`);
  print(`| GET /metrics ms, median of 100 (wall) | ${fmt(narrow.scrapeMs, 2)} | ${fmt(wide.scrapeMs, 2)} | < 5 at 10 |`);
  print(`| GET /metrics ms of CPU, mean of 100 | ${fmt(narrow.scrapeCpuMs, 2)} | ${fmt(wide.scrapeCpuMs, 2)} | |`);
  print();
  print('| memory (fresh server, batches of 50 rows) | RSS | goal |');
  print('| --- | --- | --- |');
  for (const { rows: n, bytes } of memory.rss) print(`| after ${fmt(n)} rows | ${mb(bytes)} | |`);
  print(`| growth from 10,000 to 1,000,000 rows | ${mb(memory.rss.at(-1)!.bytes - memory.rss[0]!.bytes)} | < 20 MB |`);
  if (memory.non200 > 0) print(`| non-200 answers | ${memory.non200} | 0 |`);
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
