import type { Argv, CommandModule } from 'yargs';
import type { CaptureBackend } from '../../api/capture.js';
import { installCapture, removeCapture, renderCapture } from '../../capture/install.js';
import { captureStatus } from '../../capture/status.js';
import { verifyCapture } from '../../capture/verify.js';
import { loadCaptureConfig } from '../../config/capture.js';
import { readConfigFile, readEnv } from '../../config/sources.js';
import { ErrorCode, vmeshError } from '../../lib/errors.js';
import { emit, type OutputFormat, outputOption } from '../output.js';

/** The capture flags; names map one-to-one onto the config module's keys. */
function captureFlags<T>(y: Argv<T>) {
  return y
    .option('backend', { type: 'string', describe: 'nftables (default) or iptables' })
    .option('config', { type: 'string', describe: 'agent config file (YAML); its capture: section' })
    .option('proxy-uid', { type: 'string', describe: 'uid of the proxy and agent, never captured (default 1337)' })
    .option('proxy-gid', { type: 'string', describe: 'gid of the proxy and agent sockets, never captured (default 1337)' })
    .option('exclude-uids', { type: 'string', array: true, describe: 'more uids whose traffic is not captured' })
    .option('exclude-gids', { type: 'string', array: true, describe: 'more gids whose traffic is not captured' })
    .option('outbound-port', { type: 'string', describe: 'proxy outbound port (default 15001)' })
    .option('inbound-port', { type: 'string', describe: 'proxy inbound port (default 15006)' })
    .option('dns-port', { type: 'string', describe: 'agent DNS proxy port (default 15053)' })
    .option('controller-addresses', { type: 'string', array: true, describe: 'controller IPs/CIDRs, never captured' })
    .option('inbound-ports', { type: 'string', array: true, describe: 'inbound ports to capture: * (default) or a list' })
    .option('exclude-inbound-ports', { type: 'string', array: true, describe: 'inbound ports not captured' })
    .option('outbound-cidrs', { type: 'string', array: true, describe: 'destinations captured: * (default) or CIDRs' })
    .option('exclude-outbound-cidrs', { type: 'string', array: true, describe: 'destinations not captured' })
    .option('include-outbound-ports', { type: 'string', array: true, describe: 'ports captured whatever the destination' })
    .option('exclude-outbound-ports', { type: 'string', array: true, describe: 'outbound ports not captured' })
    .option('capture-dns', { type: 'boolean', describe: 'redirect udp/tcp 53 to the DNS proxy (default true)' })
    .option('capture-ssh', { type: 'boolean', describe: 'capture port 22 too (default false)' })
    .option('ipv6', { type: 'boolean', describe: 'capture IPv6 too (default true)' })
    .option('passthrough-source', { type: 'string', describe: 'inbound passthrough source address (default 127.0.0.6)' })
    .option('output', outputOption);
}

type Flags = Record<string, unknown> & { config?: string; output: OutputFormat };

function configFrom(argv: Flags) {
  const keys = [
    'backend',
    'proxyUid',
    'proxyGid',
    'excludeUids',
    'excludeGids',
    'outboundPort',
    'inboundPort',
    'dnsPort',
    'controllerAddresses',
    'inboundPorts',
    'excludeInboundPorts',
    'outboundCidrs',
    'excludeOutboundCidrs',
    'includeOutboundPorts',
    'excludeOutboundPorts',
    'captureDns',
    'captureSsh',
    'ipv6',
    'passthroughSource',
  ];
  const flags = Object.fromEntries(keys.map((k) => [k, argv[k]]));
  return loadCaptureConfig({ flags, env: readEnv(), file: readConfigFile(argv.config) });
}

const install: CommandModule<object, Flags> = {
  command: 'install',
  describe: 'install the capture rules (replaces any installed set atomically)',
  builder: (y) => captureFlags(y).option('dry-run', { type: 'boolean', describe: 'print the exact rules, change nothing' }) as never,
  handler: async (argv) => {
    const cfg = configFrom(argv);
    const rendered = renderCapture(cfg);
    if (argv.dryRun) {
      emit(argv.output, rendered, () =>
        rendered.backend === 'nftables'
          ? JSON.stringify(rendered.batch, null, 2)
          : `# iptables-restore --noflush (IPv4)\n${rendered.ipv4}\n# ip6tables-restore --noflush (IPv6)\n${rendered.ipv6}`,
      );
      return;
    }
    await installCapture(cfg);
    emit(argv.output, { installed: cfg.backend }, () => `capture installed (${cfg.backend})`);
  },
};

const remove: CommandModule<object, Flags> = {
  command: 'remove',
  describe: 'remove every vmesh capture rule (both backends unless --backend is given)',
  builder: (y) =>
    y.option('backend', { type: 'string', describe: 'nftables or iptables (default: both)' }).option('output', outputOption) as never,
  handler: async (argv) => {
    const b = argv.backend === undefined ? 'all' : String(argv.backend);
    if (!['all', 'nftables', 'iptables'].includes(b)) {
      throw vmeshError(ErrorCode.Usage, `capture remove --backend: unknown "${b}", want nftables or iptables`);
    }
    await removeCapture(b as CaptureBackend | 'all');
    emit(argv.output, { removed: b }, () => `capture removed (${b === 'all' ? 'nftables and iptables' : b})`);
  },
};

const status: CommandModule<object, Flags> = {
  command: 'status',
  describe: 'show which capture rules are installed, and warn about conflicts',
  builder: (y) => y.option('output', outputOption) as never,
  handler: async (argv) => {
    const s = await captureStatus();
    emit(argv.output, s, () => {
      const lines = [`installed: ${s.installed}`];
      if (s.nftables) {
        lines.push(
          `nftables: table inet vmesh, ${s.nftables.rules} rules; redirected packets inbound ${s.nftables.redirectedPackets.inbound}, outbound ${s.nftables.redirectedPackets.outbound}${s.nftables.owned ? '; owned by the running agent (the kernel removes it when the agent exits)' : ''}`,
        );
      }
      if (s.iptables)
        lines.push(
          `iptables: ${s.iptables.ipv4Rules} IPv4 + ${s.iptables.ipv6Rules} IPv6 rules in VMESH_ chains, ${s.iptables.jumps} jumps`,
        );
      for (const w of s.warnings) lines.push(`warning: ${w}`);
      return lines.join('\n');
    });
  },
};

const verify: CommandModule<object, Flags> = {
  command: 'verify',
  describe: 'prove capture works by sending probe connections through it',
  builder: (y) => captureFlags(y) as never,
  handler: async (argv) => {
    const report = await verifyCapture(configFrom(argv));
    emit(argv.output, report, () => report.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`).join('\n'));
    if (!report.ok)
      throw vmeshError(
        ErrorCode.CaptureVerifyFailed,
        `capture verify: ${report.checks
          .filter((c) => !c.ok)
          .map((c) => c.name)
          .join(', ')} failed`,
      );
  },
};

export const captureCommand: CommandModule = {
  command: 'capture <command>',
  describe: 'manage transparent traffic capture (nftables or iptables REDIRECT rules)',
  builder: (y) =>
    y
      .command([install, remove, status, verify] as CommandModule[])
      .demandCommand(1, 'name a capture command: install, remove, status or verify'),
  handler: () => {},
};
