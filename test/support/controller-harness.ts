/**
 * Runs a real vmesh controller for end-to-end tests: in-process (`startTestController`) or as a `vmesh controller`
 * subprocess (`startControllerProcess`, for restart and kill -9 tests), plus the CLI as a subprocess and a small
 * HTTPS client that trusts the controller's CA. Everything binds 127.0.0.1 with port 0.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadControllerConfig } from '../../src/config/controller.js';
import { type RunningController, startController } from '../../src/controller/controller.js';
import { createLogger } from '../../src/lib/logger.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI_MAIN = join(REPO_ROOT, 'src', 'cli', 'main.ts');
const STOP_TIMEOUT_MS = 8000;

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment children get: ours without VMESH_* settings, so only the flags a test passes count. */
function childEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VMESH_')));
}

/** Runs `vmesh ...args` (src/cli/main.ts through tsx); `code` is null when it had to be killed after the timeout. */
export function runCli(args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI_MAIN, ...args], {
      cwd: REPO_ROOT,
      env: childEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // the CLI may exit before reading stdin
    child.stdin.end(opts.input ?? '');
  });
}

export interface ApiResponse {
  readonly status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON documents of many shapes, inspected by assertions
  readonly body: any;
}

/** One HTTPS request to the controller's API, verifying its certificate against `caPem`; no connection reuse. */
export function apiRequest(
  apiUrl: string,
  caPem: string,
  method: string,
  path: string,
  opts: { token?: string; authorization?: string; body?: unknown; contentType?: string } = {},
): Promise<ApiResponse> {
  const payload = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.authorization !== undefined) headers.authorization = opts.authorization;
  if (payload !== undefined) {
    headers['content-type'] = opts.contentType ?? (typeof opts.body === 'string' ? 'application/yaml' : 'application/json');
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, apiUrl), { method, headers, ca: caPem, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: text === '' ? undefined : JSON.parse(text) });
        } catch {
          reject(new Error(`${method} ${path}: ${res.statusCode} with non-JSON body: ${text.slice(0, 200)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Polls `probe` until it returns a value other than undefined; bounded in time, never in a tight loop. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export interface TestControllerOptions {
  readonly consulUrl?: string;
  readonly hostTimeoutSeconds?: number;
  readonly mesh?: object;
  /** Reuse a data directory (kept on stop); by default a fresh temp dir, removed on stop. */
  readonly dataDir?: string;
  /** `--store consul` (needs consulUrl): state in Consul KV under `consulPrefix` (default vmesh/). */
  readonly store?: 'file' | 'consul';
  readonly consulPrefix?: string;
  /** Other controller flags, by their config names (e.g. signRate). */
  readonly flags?: Readonly<Record<string, string>>;
}

export interface TestController {
  readonly dataDir: string;
  /** https://127.0.0.1:<port> */
  readonly apiUrl: string;
  /** 127.0.0.1:<port> */
  readonly grpcAddress: string;
  readonly adminToken: string;
  /** The CA certificate the CLI finds in the data dir (ca/ca-cert.pem). */
  readonly caPem: string;
  readonly running: RunningController;
  /** `api(method, path, body?)` with the admin token. */
  api(method: string, path: string, body?: unknown): Promise<ApiResponse>;
  stop(): Promise<void>;
  /** `vmesh ...args --controller <apiUrl> --data-dir <dataDir>` as a subprocess. */
  cli(args: readonly string[], opts?: { input?: string }): Promise<CliResult>;
}

async function newDataDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'vmesh-ctl-test-'));
}

/** The controller in this process, configured exactly as `vmesh controller` would be from flags, with a silent logger. */
export async function startTestController(opts: TestControllerOptions = {}): Promise<TestController> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await newDataDir());
  const cfg = loadControllerConfig({
    flags: {
      dataDir,
      listen: '127.0.0.1',
      grpcPort: '0',
      apiPort: '0',
      hostTimeout: opts.hostTimeoutSeconds === undefined ? undefined : String(opts.hostTimeoutSeconds),
      consul: opts.consulUrl,
      consulWait: '1',
      store: opts.store,
      consulPrefix: opts.consulPrefix,
      ...opts.flags,
    },
    env: {},
    file: opts.mesh ? { mesh: opts.mesh } : {},
  });
  let running: RunningController;
  try {
    running = await startController(cfg, createLogger({ level: 'silent' }));
  } catch (e) {
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
    throw e;
  }
  const adminToken = (await readFile(running.adminTokenFile, 'utf8')).trim();
  const caPem = await readFile(join(dataDir, 'ca', 'ca-cert.pem'), 'utf8');
  const apiUrl = `https://127.0.0.1:${running.apiPort}`;
  let stopped = false;
  return {
    dataDir,
    apiUrl,
    grpcAddress: `127.0.0.1:${running.grpcPort}`,
    adminToken,
    caPem,
    running,
    api: (method, path, body) => apiRequest(apiUrl, caPem, method, path, { token: adminToken, body }),
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await withTimeout(running.stop(), STOP_TIMEOUT_MS, 'controller stop()');
      } finally {
        if (ownDir) await rm(dataDir, { recursive: true, force: true });
      }
    },
    cli: (args, o) => runCli([...args, '--controller', apiUrl, '--data-dir', dataDir], o),
  };
}

export interface ControllerProcess {
  readonly child: ChildProcess;
  readonly dataDir: string;
  readonly apiUrl: string;
  readonly grpcAddress: string;
  /** What the process wrote to stderr so far (its JSON log). */
  stderr(): string;
  /** Sends `signal` and resolves when the process has exited (SIGKILL after the timeout). */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `vmesh controller` as a subprocess on `dataDir`; resolves after its one JSON ready line on stdout. */
export async function startControllerProcess(opts: {
  dataDir: string;
  hostTimeoutSeconds?: number;
  timeoutMs?: number;
}): Promise<ControllerProcess> {
  const args = ['--data-dir', opts.dataDir, '--listen', '127.0.0.1', '--grpc-port', '0', '--api-port', '0', '--log-level', 'warn'];
  if (opts.hostTimeoutSeconds !== undefined) args.push('--host-timeout', String(opts.hostTimeoutSeconds));
  const child = spawn(process.execPath, ['--import', 'tsx', CLI_MAIN, 'controller', ...args], {
    cwd: REPO_ROOT,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = await new Promise<{ grpcPort: number; apiPort: number }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`vmesh controller printed no ready line within ${opts.timeoutMs ?? 15_000} ms; stderr: ${stderr.slice(-500)}`));
    }, opts.timeoutMs ?? 15_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const nl = stdout.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        const line = JSON.parse(stdout.slice(0, nl)) as { ready?: boolean; grpcPort?: number; apiPort?: number };
        if (line.ready !== true || typeof line.grpcPort !== 'number' || typeof line.apiPort !== 'number')
          throw new Error('not a ready line');
        resolve({ grpcPort: line.grpcPort, apiPort: line.apiPort });
      } catch (e) {
        child.kill('SIGKILL');
        reject(new Error(`vmesh controller: first stdout line ${JSON.stringify(stdout.slice(0, nl))}: ${(e as Error).message}`));
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`vmesh controller exited (code ${code}, signal ${signal}) before ready; stderr: ${stderr.slice(-500)}`));
    });
  });
  let result: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  return {
    child,
    dataDir: opts.dataDir,
    apiUrl: `https://127.0.0.1:${ready.apiPort}`,
    grpcAddress: `127.0.0.1:${ready.grpcPort}`,
    stderr: () => stderr,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (result) return result;
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const killer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      result = await exited;
      clearTimeout(killer);
      return result;
    },
  };
}

/** A fresh temp directory and its removal, for tests that run several controllers on one data dir. */
export async function tempDataDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await newDataDir();
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
