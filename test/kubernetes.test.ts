// deploy/kubernetes/: the generated manifests match their sources, and the kustomize base and its
// two variants render with the real kubectl into the objects the README promises, with the alert
// rules still passing every promtool test once taken back out of the rendered PrometheusRule.
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { dump, load, loadAll } from 'js-yaml';
import t from 'tap';
import { generatedManifests, RELEASE_LABEL } from '../scripts/kubernetes.js';
import { parseServeConfig } from '../src/config.js';
import { requireBinary, runBinary } from './helpers/binaries.js';
import { freePort, root, tempDir } from './helpers/cli.js';
import { testApp } from './helpers/app.js';

interface Probe {
  httpGet?: { path: string; host?: string };
  exec?: { command: string[] };
}
interface Container {
  name: string;
  image: string;
  args: string[];
  env?: { name: string; value: string }[];
  resources?: { requests?: Record<string, string> };
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  securityContext?: { allowPrivilegeEscalation?: boolean };
  ports?: { name: string; containerPort: number }[];
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: {
    groups?: { name: string }[];
    jobLabel?: string;
    endpoints?: unknown[];
    ingress?: { ports: unknown[] }[];
    template?: { spec: { enableServiceLinks?: boolean; securityContext?: { runAsNonRoot?: boolean }; containers: Container[]; volumes?: { name: string }[] } };
  };
  data?: Record<string, string>;
}

const kubectl = await requireBinary('kubectl');
const promtool = await requireBinary('promtool');

async function render(dir: string): Promise<K8sObject[]> {
  const r = await runBinary(kubectl, ['kustomize', join(root, dir)]);
  if (r.code !== 0) throw new Error(`kubectl kustomize ${dir} exited ${r.code}: ${r.stderr}`);
  return (loadAll(r.stdout) as K8sObject[]).sort((a, b) => a.kind.localeCompare(b.kind));
}
const kinds = (objects: K8sObject[]) => objects.map((o) => `${o.apiVersion} ${o.kind} ${o.metadata.name}`).sort();
const BASE_OBJECTS = [
  'apps/v1 Deployment modelwatch',
  'monitoring.coreos.com/v1 PrometheusRule modelwatch',
  'monitoring.coreos.com/v1 ServiceMonitor modelwatch',
  'networking.k8s.io/v1 NetworkPolicy modelwatch',
  'v1 ConfigMap modelwatch-dashboards',
  'v1 Service modelwatch',
];
const deployment = (objects: K8sObject[]) => objects.find((o) => o.kind === 'Deployment')!.spec!.template!.spec;
const ruleFiles = (await readdir(join(root, 'prometheus/rules'))).filter((f) => f.endsWith('.yml')).sort();
const sourceGroups = new Map(await Promise.all(ruleFiles.map(async (f) => [f, (load(await readFile(join(root, 'prometheus/rules', f), 'utf8')) as { groups: { name: string }[] }).groups] as const)));

t.test('the PrometheusRule and the dashboard ConfigMap are what npm run kubernetes makes of their sources', async (t) => {
  for (const [path, text] of Object.entries(generatedManifests())) {
    t.equal(await readFile(join(root, path), 'utf8'), text, `${path} is up to date (run npm run kubernetes)`);
  }
});

t.test('the base: a sidecar next to a model server, its Service, ServiceMonitor, rules and dashboard', async (t) => {
  const objects = await render('deploy/kubernetes');
  t.same(kinds(objects), BASE_OBJECTS);
  const pod = deployment(objects);
  t.equal(pod.enableServiceLinks, false);
  t.equal(pod.securityContext?.runAsNonRoot, true);
  t.same(pod.containers.map((c) => c.name), ['model-server', 'modelwatch']);
  for (const c of pod.containers) {
    t.equal(c.image, 'registry.example.com/modelwatch:0.1.0', `${c.name}: the image kustomization.yaml names`);
    t.ok(c.resources?.requests?.cpu && c.resources.requests.memory, `${c.name} requests cpu and memory`);
    t.equal(c.securityContext?.allowPrivilegeEscalation, false);
    const env = Object.fromEntries((c.env ?? []).map(({ name, value }) => [name, value]));
    t.doesNotThrow(() => parseServeConfig(c.args.slice(1), env), `${c.name}: args and env are valid serve options`);
  }
  const sidecar = pod.containers[1]!;
  t.equal(sidecar.livenessProbe?.httpGet?.path, '/healthz');
  t.equal(sidecar.readinessProbe?.httpGet?.path, '/readyz');
  for (const probe of pod.containers.flatMap((c) => [c.livenessProbe, c.readinessProbe])) {
    t.equal(probe?.httpGet?.host, undefined, 'no HTTP probe names a host: the kubelet would probe its own node');
  }
  t.match(sidecar.args, ['serve', '--upstream=http://127.0.0.1:9000']);

  const rule = objects.find((o) => o.kind === 'PrometheusRule')!;
  t.same(rule.metadata.labels, RELEASE_LABEL);
  t.same(rule.spec!.groups!.map((g) => g.name), [...sourceGroups.values()].flat().map((g) => g.name), 'every group of prometheus/rules');
  const monitor = objects.find((o) => o.kind === 'ServiceMonitor')!;
  t.same(monitor.metadata.labels, RELEASE_LABEL);
  t.equal(monitor.spec!.jobLabel, 'app.kubernetes.io/name');
  t.equal(objects.find((o) => o.kind === 'Service')!.metadata.labels!['app.kubernetes.io/name'], 'modelwatch', 'job="modelwatch", as the rules expect');
  t.same(monitor.spec!.endpoints, [{ port: 'metrics', path: '/metrics', interval: '15s' }], 'scraped on the metrics listener');
  t.same(sidecar.ports, [{ name: 'http', containerPort: 8080 }, { name: 'metrics', containerPort: 9464 }]);
  const sidecarEnv = Object.fromEntries((sidecar.env ?? []).map(({ name, value }) => [name, value]));
  t.equal(parseServeConfig(sidecar.args.slice(1), sidecarEnv).metricsPort, 9464, 'the metrics listener serves the metrics port');
  t.equal(sidecarEnv.MODELWATCH_INGEST_TOKEN_FILE, '/etc/modelwatch/tokens/ingest', 'ingest needs a token');
  t.same(pod.volumes?.find((v) => v.name === 'ingest-tokens'), { name: 'ingest-tokens', secret: { secretName: 'modelwatch-ingest-tokens' } }, 'from a Secret, never inline');
  const policy = objects.find((o) => o.kind === 'NetworkPolicy')!;
  t.same(policy.spec!.ingress!.map((rule) => rule.ports), [[{ port: 'metrics' }], [{ port: 'http' }]], 'Prometheus to the metrics port, clients to the prediction port, nothing else');
  const dashboards = objects.find((o) => o.kind === 'ConfigMap')!;
  t.same(dashboards.metadata.labels, { grafana_dashboard: '1' });
  t.equal(dashboards.data!['modelwatch.json'], await readFile(join(root, 'grafana/dashboards/modelwatch.json'), 'utf8'));
});

t.test("the model server's probes, run as the kubelet runs them in its container: fail with no server, pass on a real one", async (t) => {
  const [modelServer] = deployment(await render('deploy/kubernetes')).containers;
  const { app } = await testApp(t);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  for (const [kind, probe] of [['readiness', modelServer!.readinessProbe], ['liveness', modelServer!.livenessProbe]] as const) {
    const [command, ...args] = probe!.exec!.command;
    t.equal(command, 'node', `${kind}: the image's node`);
    const against = (to: number) => runBinary(process.execPath, args.map((a) => a.replace('127.0.0.1:9000', `127.0.0.1:${to}`)));
    t.equal((await against(await freePort())).code, 1, `${kind}: exit 1 when nothing listens`);
    t.equal((await against(port)).code, 0, `${kind}: exit 0 on a serving model server`);
  }
});

t.test('standalone: one container running the model itself', async (t) => {
  const objects = await render('deploy/kubernetes/standalone');
  t.same(kinds(objects), BASE_OBJECTS);
  const pod = deployment(objects);
  t.same(pod.containers.map((c) => [c.name, c.args]), [['modelwatch', ['serve']]]);
  t.equal(pod.containers[0]!.readinessProbe?.httpGet?.path, '/readyz');
  t.equal(pod.enableServiceLinks, false);
});

t.test('podmonitor: the base scraped through a PodMonitor instead of the ServiceMonitor', async (t) => {
  const objects = await render('deploy/kubernetes/podmonitor');
  t.same(kinds(objects), BASE_OBJECTS.map((o) => o.replace('ServiceMonitor', 'PodMonitor')).sort());
  const monitor = objects.find((o) => o.kind === 'PodMonitor')!;
  t.same(monitor.metadata.labels, RELEASE_LABEL);
  t.equal(monitor.spec!.jobLabel, 'app.kubernetes.io/name');
});

t.test('the rules taken out of the rendered PrometheusRule pass promtool check and every promtool test', async (t) => {
  const groups = new Map((await render('deploy/kubernetes')).find((o) => o.kind === 'PrometheusRule')!.spec!.groups!.map((g) => [g.name, g]));
  const dir = await tempDir(t);
  await mkdir(join(dir, 'rules'));
  await mkdir(join(dir, 'tests'));
  // Back into the files the promtool tests name, each with the groups its source file has.
  for (const [file, source] of sourceGroups) {
    await writeFile(join(dir, 'rules', file), dump({ groups: source.map((g) => groups.get(g.name)) }));
  }
  const tests = (await readdir(join(root, 'prometheus/tests'))).filter((f) => f.endsWith('.yml'));
  for (const f of tests) await copyFile(join(root, 'prometheus/tests', f), join(dir, 'tests', f));
  const check = await runBinary(promtool, ['check', 'rules', ...ruleFiles.map((f) => join(dir, 'rules', f))]);
  t.equal(check.code, 0, `promtool check rules\n${check.stdout}${check.stderr}`);
  const run = await runBinary(promtool, ['test', 'rules', ...tests.map((f) => join(dir, 'tests', f))], { cwd: dir, timeoutMs: 300_000 });
  t.equal(run.code, 0, `promtool test rules\n${run.stdout}${run.stderr}`);
  for (const f of tests) t.match(run.stdout, `Unit Testing:  ${join(dir, 'tests', f)}`, `promtool ran ${f}`);
});
