// docker-compose.yml and the Dockerfile, checked without a Docker engine: the compose file
// parses, every bind-mounted path exists, the files each container is told to read are mounted
// where it looks for them, and the hosts and ports agree with prometheus.yml, the Grafana
// datasource, alertmanager.yml and the server's default port.
import { existsSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';
import t from 'tap';

const root = fileURLToPath(new URL('../../', import.meta.url));
const SERVER_DEFAULT_PORT = 8080; // README options table: `--port` defaults to 8080

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | number | { target: number; published?: number | string })[];
  expose?: (string | number)[];
  volumes?: (string | { type?: string; source?: string; target: string })[];
  depends_on?: string[] | Record<string, { condition?: string }>;
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const compose = load(await readFile(join(root, 'docker-compose.yml'), 'utf8')) as Compose;
const prom = load(await readFile(join(root, 'prometheus', 'prometheus.yml'), 'utf8')) as {
  global: { scrape_interval: string };
  rule_files: string[];
  alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
  scrape_configs: { job_name: string; scrape_interval?: string; metrics_path?: string; static_configs: { targets: string[] }[] }[];
};
const datasources = load(
  await readFile(join(root, 'grafana', 'provisioning', 'datasources', 'prometheus.yml'), 'utf8'),
) as { datasources: { type: string; url: string; uid: string; jsonData?: { timeInterval?: string } }[] };
const dashProviders = load(
  await readFile(join(root, 'grafana', 'provisioning', 'dashboards', 'modelwatch.yml'), 'utf8'),
) as { providers: { options: { path: string } }[] };
const alertmanagerText = await readFile(join(root, 'prometheus', 'alertmanager.yml'), 'utf8');
const dockerfile = await readFile(join(root, 'Dockerfile'), 'utf8');

interface Mount {
  source: string; // absolute host path for bind mounts, the volume name otherwise
  target: string;
  bind: boolean;
  readOnly: boolean;
}

function mounts(s: Service): Mount[] {
  return (s.volumes ?? []).map((v) => {
    if (typeof v === 'string') {
      const [source, target, mode] = v.split(':') as [string, string, string | undefined];
      const bind = source.startsWith('.') || source.startsWith('/');
      return { source: bind ? resolve(root, source) : source, target, bind, readOnly: mode === 'ro' };
    }
    const bind = v.type === 'bind';
    const readOnly = (v as { read_only?: boolean }).read_only === true;
    return { source: bind ? resolve(root, v.source ?? '') : v.source ?? '', target: v.target, bind, readOnly };
  });
}

/** The host path a container path comes from, through the service's bind mounts (longest target wins). */
function hostPathOf(s: Service, containerPath: string): string | undefined {
  const m = mounts(s)
    .filter((m) => m.bind && (containerPath === m.target || containerPath.startsWith(`${m.target}/`)))
    .sort((a, b) => b.target.length - a.target.length)[0];
  return m ? join(m.source, posix.relative(m.target, containerPath)) : undefined;
}

function env(s: Service): Record<string, string> {
  if (Array.isArray(s.environment)) {
    return Object.fromEntries(s.environment.map((e) => [e.split('=')[0]!, e.split('=').slice(1).join('=')]));
  }
  return Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
}

/** Container-side ports a service publishes or exposes. */
function containerPorts(s: Service): number[] {
  const fromPorts = (s.ports ?? []).map((p) => {
    if (typeof p === 'object') return p.target;
    const spec = String(p).split('/')[0]!;
    return Number(spec.split(':').at(-1));
  });
  return [...fromPorts, ...(s.expose ?? []).map((p) => Number(String(p).split('/')[0]))];
}

function args(s: Service): string[] {
  const c = s.command;
  return Array.isArray(c) ? c : typeof c === 'string' ? c.split(/\s+/) : [];
}

function flag(s: Service, name: string): string | undefined {
  const a = args(s).find((x) => x.startsWith(`--${name}=`));
  return a?.slice(name.length + 3);
}

function hostPort(target: string): { host: string; port: number } {
  const [host, port] = target.split(':');
  return { host: host!, port: Number(port) };
}

const services = compose.services;

t.test('services', async (t) => {
  t.same(Object.keys(services).sort(), ['alertmanager', 'grafana', 'modelwatch', 'prometheus', 'traffic']);
});

t.test('images are pinned', async (t) => {
  const expected: Record<string, RegExp> = {
    prometheus: /^prom\/prometheus:v2\.\d+\.\d+$/,
    alertmanager: /^prom\/alertmanager:v0\.\d+\.\d+$/,
    grafana: /^grafana\/grafana:11\.\d+\.\d+$/,
  };
  for (const [name, s] of Object.entries(services)) {
    const image = s.image ?? '';
    t.notMatch(image, /:latest$/, `${name}: not :latest`);
    if (expected[name]) t.match(image, expected[name], `${name}: pinned to a release (${image})`);
    else t.ok(s.build !== undefined || image === services.modelwatch!.image, `${name}: built from the repository`);
    if (image) t.match(image, /:[^/]+$/, `${name}: has a tag`);
  }
  t.equal(services.traffic!.image, services.modelwatch!.image, 'traffic runs the image modelwatch builds');
});

t.test('every mounted host path exists and named volumes are declared', async (t) => {
  for (const [name, s] of Object.entries(services)) {
    for (const m of mounts(s)) {
      if (m.bind) {
        t.ok(m.source.startsWith(root), `${name}: ${m.source} is inside the repository`);
        t.ok(existsSync(m.source), `${name}: ${m.source} exists`);
      } else {
        t.ok(compose.volumes && m.source in compose.volumes, `${name}: volume ${m.source} is declared`);
      }
    }
  }
  const build = services.modelwatch!.build;
  const context = resolve(root, typeof build === 'string' ? build : build?.context ?? '.');
  const file = typeof build === 'object' && build.dockerfile ? build.dockerfile : 'Dockerfile';
  t.ok(existsSync(join(context, file)), 'the build context has the Dockerfile');
});

t.test('prometheus scrapes the server on its default port and finds its rules', async (t) => {
  const p = services.prometheus!;
  const configPath = flag(p, 'config.file');
  t.ok(configPath, 'prometheus is given --config.file');
  t.equal(hostPathOf(p, configPath!), join(root, 'prometheus', 'prometheus.yml'), 'the repo prometheus.yml is mounted there');

  for (const pattern of prom.rule_files) {
    const containerDir = posix.dirname(posix.join(posix.dirname(configPath!), pattern));
    const hostDir = hostPathOf(p, containerDir);
    t.ok(hostDir, `${containerDir} (rule_files ${pattern}) is mounted`);
    if (!hostDir) continue;
    const re = new RegExp(`^${posix.basename(pattern).replace(/\./g, '\\.').replace(/\*/g, '.*')}$`);
    const matched = (await readdir(hostDir)).filter((f) => re.test(f));
    t.ok(matched.length > 0, `${pattern} matches rule files in ${hostDir}: ${matched.join(', ')}`);
  }

  const job = prom.scrape_configs.find((c) => c.job_name === 'modelwatch');
  t.ok(job, 'job modelwatch');
  t.equal(job?.scrape_interval ?? prom.global.scrape_interval, '15s', 'scrape_interval 15s');
  t.equal(job?.metrics_path ?? '/metrics', '/metrics');
  const targets = job?.static_configs.flatMap((c) => c.targets) ?? [];
  t.ok(targets.length > 0, 'has targets');
  for (const target of targets) {
    const { host, port } = hostPort(target);
    t.ok(services[host], `target host ${host} is a compose service`);
    const s = services[host];
    if (!s) continue;
    t.ok(containerPorts(s).includes(port), `${host} publishes container port ${port}`);
    const e = env(s);
    const served = Number(e.MODELWATCH_METRICS_PORT ?? e.MODELWATCH_PORT ?? SERVER_DEFAULT_PORT);
    t.equal(port, served, `target ${target} is the port serving /metrics (MODELWATCH_METRICS_PORT, else MODELWATCH_PORT, else the default)`);
    t.equal(e.MODELWATCH_HOST, '0.0.0.0', `${host} listens on all interfaces in its container`);
  }
});

const serverConfig = join(root, 'src', 'config.ts');
t.test('the server default port agrees with the server code', { skip: !existsSync(serverConfig) && 'no src/config.ts yet' }, async (t) => {
  const config = serverConfig;
  t.match(await readFile(config, 'utf8'), new RegExp(`\\b${SERVER_DEFAULT_PORT}\\b`), 'src/config.ts defaults to 8080');
});

t.test('alertmanager: prometheus sends to it, it reads its config and the PagerDuty key file', async (t) => {
  const targets = prom.alerting.alertmanagers.flatMap((a) => a.static_configs.flatMap((c) => c.targets));
  t.ok(targets.length > 0);
  for (const target of targets) {
    const { host, port } = hostPort(target);
    t.equal(host, 'alertmanager');
    t.ok(services[host] && containerPorts(services[host]!).includes(port), `alertmanager publishes ${port}`);
  }
  const am = services.alertmanager!;
  const configPath = flag(am, 'config.file');
  t.equal(hostPathOf(am, configPath ?? ''), join(root, 'prometheus', 'alertmanager.yml'), 'alertmanager.yml is mounted');
  const keyFiles = [...alertmanagerText.matchAll(/routing_key_file:\s*(\S+)/g)].map((m) => m[1]!);
  t.ok(keyFiles.length > 0, 'alertmanager.yml reads routing keys from files');
  for (const key of new Set(keyFiles)) {
    const hostDir = hostPathOf(am, dirname(key));
    t.equal(hostDir, join(root, 'prometheus', 'secrets'), `${dirname(key)} is the mounted secrets directory`);
    t.ok(mounts(am).find((m) => m.target === dirname(key))?.readOnly, 'the secrets are mounted read-only');
  }
});

t.test('grafana: datasource, provisioning and dashboards are where Grafana looks', async (t) => {
  const g = services.grafana!;
  t.equal(hostPathOf(g, '/etc/grafana/provisioning/datasources'), join(root, 'grafana', 'provisioning', 'datasources'));
  t.equal(hostPathOf(g, '/etc/grafana/provisioning/dashboards'), join(root, 'grafana', 'provisioning', 'dashboards'));
  for (const provider of dashProviders.providers) {
    const hostDir = hostPathOf(g, provider.options.path);
    t.equal(hostDir, join(root, 'grafana', 'dashboards'), `${provider.options.path} holds the repo dashboards`);
    if (hostDir) t.ok(existsSync(join(hostDir, 'modelwatch.json')), 'modelwatch.json is in it');
  }
  const home = env(g).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
  if (home) {
    const hostHome = hostPathOf(g, home);
    t.ok(hostHome && existsSync(hostHome) && statSync(hostHome).isFile(), `home dashboard ${home} exists`);
  }
  const ds = datasources.datasources.find((d) => d.type === 'prometheus');
  t.ok(ds, 'a Prometheus datasource');
  const url = new URL(ds!.url);
  t.ok(services[url.hostname], `datasource host ${url.hostname} is a compose service`);
  t.ok(containerPorts(services[url.hostname]!).includes(Number(url.port)), `${url.hostname} publishes ${url.port}`);
  t.equal(ds!.jsonData?.timeInterval, prom.global.scrape_interval, 'timeInterval equals the scrape interval ($__rate_interval)');
});

t.test('traffic loops modelwatch simulate against the server', async (t) => {
  const tr = services.traffic!;
  const script = [...(Array.isArray(tr.entrypoint) ? tr.entrypoint : [tr.entrypoint ?? '']), ...args(tr)].join(' ');
  t.match(script, /while true/, 'runs in a loop');
  t.match(script, /bin\/modelwatch\.js simulate/, 'runs modelwatch simulate');
  t.ok(mounts(tr).some((m) => m.source === 'modelwatch-data' && m.target === '/app/data' && m.readOnly), 'reads the server\'s feature log, so its check-csv runs');
  const url = /--url\s+(\S+)/.exec(script)?.[1];
  t.ok(url, 'passes --url');
  const u = new URL(url!);
  t.equal(u.hostname, 'modelwatch');
  t.equal(Number(u.port), SERVER_DEFAULT_PORT);
  t.match(script, /--requests\s+\d+/);
  t.match(script, /--drift\s+\S+/);
  t.match(script, /\s--feedback\b/, 'sends each row\'s target as its label, for the ground-truth panels');
  const deps = tr.depends_on;
  t.equal(Array.isArray(deps) ? undefined : deps?.modelwatch?.condition, 'service_healthy', 'waits for the healthcheck');
});

t.test('Dockerfile: multi-stage, production dependencies, non-root, health-checked', async (t) => {
  const lines = dockerfile.split('\n').map((l) => l.trim());
  const froms = lines.filter((l) => /^FROM\s/i.test(l));
  t.ok(froms.length >= 2, 'multi-stage');
  for (const f of froms) t.notMatch(f, /:latest\b/, `${f} is not :latest`);
  t.notMatch(dockerfile, /alpine/, 'glibc base image (onnxruntime-node has no musl build)');
  const npmCi = lines.filter((l) => /npm ci\b/.test(l));
  t.equal(npmCi.length, 2, 'one npm ci to build, one for the runtime');
  for (const l of npmCi) t.match(l, /--ignore-scripts/, 'no GPU download, no prepare before src/ is there');
  t.match(npmCi[1] ?? '', /--omit=dev/, 'the runtime gets production dependencies only');
  t.match(dockerfile, /rm -rf node_modules\/onnxruntime-node\/bin\/napi-v6\/darwin node_modules\/onnxruntime-node\/bin\/napi-v6\/win32/, 'keeps only the Linux onnxruntime binaries');
  t.match(dockerfile, /^ENTRYPOINT \["node", "bin\/modelwatch\.js"\]$/m, 'runs the compiled CLI');
  const users = lines.filter((l) => /^USER\s/.test(l));
  t.ok(users.length > 0, 'sets USER');
  t.notMatch(users.at(-1) ?? '', /^USER\s+(root|0)(:|$)/, 'the final user is not root');
  const healthIdx = lines.findIndex((l) => /^HEALTHCHECK\b/.test(l));
  t.ok(healthIdx >= 0, 'has a HEALTHCHECK');
  t.match(dockerfile, /HEALTHCHECK[\s\S]*node[\s\S]*fetch\([\s\S]*\/healthz/, 'the healthcheck fetches /healthz with node');
  t.match(dockerfile, new RegExp(`EXPOSE\\s+${SERVER_DEFAULT_PORT}\\b`), `exposes ${SERVER_DEFAULT_PORT}`);
  t.match(dockerfile, /MODELWATCH_HOST=0\.0\.0\.0/, 'listens on all interfaces by default');
  t.match(dockerfile, /\|\| 8080\)/, 'the healthcheck defaults to the server port');
  for (const m of dockerfile.matchAll(/^COPY\s+(?!--from)(?:--\S+\s+)*(.+)\s+\S+$/gm)) {
    for (const src of m[1]!.split(/\s+/)) t.ok(existsSync(join(root, src)), `COPY source ${src} exists`);
  }
});
