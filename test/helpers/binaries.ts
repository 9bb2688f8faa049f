// Locates the binaries the tests run for real (promtool, amtool, prometheus, alertmanager,
// kubectl). When one is missing and the tests run as root (a CI container), its Debian package
// is installed once; otherwise the error says how to install it.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export type BinaryName = 'promtool' | 'amtool' | 'prometheus' | 'alertmanager' | 'kubectl';

/** Executable names to look for, in order: Debian installs Alertmanager as prometheus-alertmanager. */
const CANDIDATES: Record<BinaryName, readonly string[]> = {
  promtool: ['promtool'],
  amtool: ['amtool'],
  prometheus: ['prometheus'],
  alertmanager: ['alertmanager', 'prometheus-alertmanager'],
  kubectl: ['kubectl'],
};

/** The Debian packages that provide each binary. */
const DEBIAN_PACKAGES: Record<BinaryName, readonly string[]> = {
  promtool: ['prometheus', 'prometheus-alertmanager'],
  amtool: ['prometheus', 'prometheus-alertmanager'],
  prometheus: ['prometheus', 'prometheus-alertmanager'],
  alertmanager: ['prometheus', 'prometheus-alertmanager'],
  kubectl: ['kubectl'],
};

/** Directories searched after PATH (sbin directories are often missing from a non-root PATH). */
const EXTRA_DIRS = ['/usr/local/bin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/sbin', '/sbin'];

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of the first candidate found on PATH or in the usual bin directories, or undefined. */
export async function findBinary(name: BinaryName): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => d.startsWith('/')), ...EXTRA_DIRS];
  for (const candidate of CANDIDATES[name]) {
    for (const dir of dirs) {
      const path = join(dir, candidate);
      if (await isExecutable(path)) return path;
    }
  }
  return undefined;
}

export function installInstructions(name: BinaryName): string {
  const names = CANDIDATES[name].join(' or ');
  const elsewhere =
    name === 'kubectl'
      ? 'install kubectl (https://kubernetes.io/docs/tasks/tools/) and put it on PATH.'
      : 'download prometheus and alertmanager from https://prometheus.io/download/ and put promtool, amtool, prometheus and alertmanager on PATH.';
  return (
    `${names} was not found on PATH. The tests run the real binary. Install it:\n` +
    `  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y ${DEBIAN_PACKAGES[name].join(' ')}\n` +
    `  elsewhere:     ${elsewhere}`
  );
}

const installing = new Map<string, Promise<void>>();

/** apt-get install of the Debian packages, at most once per process and package list. */
function installDebianPackages(packages: readonly string[]): Promise<void> {
  const key = packages.join(' ');
  let install = installing.get(key);
  if (!install) {
    install = (async () => {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      // Another test process may hold the dpkg lock: wait for it instead of failing.
      const lock = ['-o', 'DPkg::Lock::Timeout=300'];
      const opts = { env, maxBuffer: 64 * 1024 * 1024, timeout: 15 * 60 * 1000 };
      await execFileAsync('apt-get', [...lock, 'update'], opts);
      await execFileAsync('apt-get', [...lock, 'install', '-y', '--no-install-recommends', ...packages], opts);
    })();
    installing.set(key, install);
  }
  return install;
}

/**
 * Absolute path of a tool. Installs its Debian packages when the binary is missing
 * and the process runs as root; otherwise throws an Error that says how to install them.
 */
export async function requireBinary(name: BinaryName): Promise<string> {
  const found = await findBinary(name);
  if (found) return found;
  if (process.getuid?.() === 0) {
    try {
      await installDebianPackages(DEBIAN_PACKAGES[name]);
    } catch (err) {
      throw new Error(
        `${installInstructions(name)}\nInstalling them with apt-get failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const installed = await findBinary(name);
    if (installed) return installed;
  }
  throw new Error(installInstructions(name));
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a binary to completion and returns its exit code and output; never throws on a non-zero exit. */
export async function runBinary(
  path: string,
  args: readonly string[],
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  try {
    const { stdout, stderr } = await execFileAsync(path, [...args], {
      cwd: options.cwd,
      timeout: options.timeoutMs ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== 'number') throw err; // spawn failure or timeout, not an exit status
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
