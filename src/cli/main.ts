#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ErrorCode, formatError, vmeshError } from '../lib/errors.js';
import { agentCommand } from './commands/agent.js';
import { caCommand } from './commands/ca.js';
import { captureCommand } from './commands/capture.js';
import { configCommand } from './commands/config.js';
import { controllerCommand } from './commands/controller.js';
import { graphCommand } from './commands/graph.js';
import { hostCommand } from './commands/host.js';
import { proxyConfigCommand, proxyStatusCommand } from './commands/proxy.js';
import { tokenCommand } from './commands/token.js';
import { uiCommand } from './commands/ui.js';
import { workloadCommand } from './commands/workload.js';

/** Exit codes: 0 ok, 1 the operation failed, 2 the command line was wrong. */
async function main(argv: string[]): Promise<number> {
  try {
    await yargs(argv)
      .scriptName('vmesh')
      .usage('vmesh <command>: a service mesh for VMs and bare-metal hosts')
      .command(controllerCommand as never)
      .command(agentCommand as never)
      .command(workloadCommand)
      .command(configCommand)
      .command(tokenCommand)
      .command(hostCommand)
      .command(caCommand)
      .command(proxyStatusCommand as never)
      .command(proxyConfigCommand as never)
      .command(captureCommand)
      .command(graphCommand)
      .command(uiCommand)
      .demandCommand(1, 'name a command; see vmesh --help')
      .strict()
      .strictCommands()
      .help()
      .version()
      .wrap(Math.min(120, process.stdout.columns ?? 120))
      .fail((msg, e) => {
        throw e ?? vmeshError(ErrorCode.Usage, msg);
      })
      .parseAsync();
    return 0;
  } catch (e) {
    // A rejected config batch carries every issue; the headline is the first, the rest follow one per line.
    const issues = (e as { details?: { issues?: unknown } }).details?.issues;
    if (Array.isArray(issues)) for (const i of issues.slice(1)) process.stderr.write(`${String(i)}\n`);
    process.stderr.write(`${formatError(e)}\n`);
    return (e as { code?: string }).code === ErrorCode.Usage ? 2 : 1;
  }
}

process.exitCode = await main(hideBin(process.argv));
