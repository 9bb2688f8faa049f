/**
 * npm run bench:storm: the overload storm of bench/overload.ts in several runs, each on a fresh
 * server (a warm one would start the storm with its JIT done and its sockets pooled), because one
 * run says little: whether the guard sheds depends on how the stalls fall. Not part of npm test.
 * Extra `serve` flags after `--` compare settings, e.g. `-- --max-requests-in-flight 0`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadRows } from '../src/simulate.js';
import { root } from '../test/helpers/cli.js';
import { startServer } from './load.js';
import { overload } from './overload.js';
import { bodies } from './throughput.js';

const defaults = { runs: '5', connections: '256', seconds: '10', rows: '1024', digits: '17' };
const { values: flags, positionals: serveFlags } = parseArgs({
  allowPositionals: true,
  options: Object.fromEntries(Object.entries(defaults).map(([name, value]) => [name, { type: 'string' as const, default: value }])),
});
const num = (name: keyof typeof defaults) => Number(flags[name]);
const print = (line = '') => process.stdout.write(`${line}\n`);
const ms = (n: number) => Math.round(n).toLocaleString('en-US');

const { rows } = await loadRows(join(root, 'models/diabetes/train.csv'), 'target');
// Clients of a model usually send float64 as their JSON library prints it, 17 significant digits,
// not train.csv's few: the body is four times the size, and its parsing as many times the work.
const sent = num('digits') >= 17 ? rows.map((row) => row.map((v, i) => v * (1 + (i + 1) * 1.1e-13))) : rows;
const [body] = bodies(sent, num('rows'), 1);
const work = await mkdtemp(join(tmpdir(), 'modelwatch-storm-'));
print(`${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
print(`${num('connections')} connections posting ${num('rows')}-row batches (${ms(body!.length / 1024)} KiB, ${num('digits') >= 17 ? '17 significant digits' : 'as in train.csv'}) for ${num('seconds')} s; serve ${serveFlags.join(' ') || '(defaults)'}`);
print();
print('| run | storm answers | shed (counted) | p99 ms /healthz | /readyz | /metrics | /predict 1 row | max ms /healthz | /metrics |');
print('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
try {
  for (let run = 1; run <= num('runs'); run++) {
    const server = await startServer('modelwatch', 'src/main.ts', ['serve', '--csv', join(work, `storm-${run}.csv`), '--log-level', 'warn', ...serveFlags]);
    const r = await overload(server, body!, num('connections'), num('seconds'), rows[0]!).finally(() => server.stop());
    const p = (name: string) => r.probes[name]!;
    const answers = Object.entries(r.storm.statuses).map(([code, n]) => `${n} x ${code}`).join(', ') + (r.storm.errors ? `, ${r.storm.errors} errors` : '');
    print(
      `| ${run} | ${answers} | ${r.overloadedCounted} | ${ms(p('GET /healthz').p99Ms)} | ${ms(p('GET /readyz').p99Ms)} | ${ms(p('GET /metrics').p99Ms)} | ` +
        `${ms(p('POST /predict (1 row)').p99Ms)} | ${ms(p('GET /healthz').maxMs)} | ${ms(p('GET /metrics').maxMs)} |`,
    );
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
print();
print(`rerun: npm run bench:storm -- ${Object.keys(defaults).map((name) => `--${name} ${flags[name]}`).join(' ')}${serveFlags.length ? ` -- ${serveFlags.join(' ')}` : ''}`);
