#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ErrorCode, formatError, vmeshError } from '../lib/errors.js';
import { captureCommand } from './commands/capture.js';

/** Exit codes: 0 ok, 1 the operation failed, 2 the command line was wrong. */
async function main(argv: string[]): Promise<number> {
  try {
    await yargs(argv)
      .scriptName('vmesh')
      .usage('vmesh <command>: a service mesh for VMs and bare-metal hosts')
      .command(captureCommand)
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
    process.stderr.write(`${formatError(e)}\n`);
    return (e as { code?: string }).code === ErrorCode.Usage ? 2 : 1;
  }
}

process.exitCode = await main(hideBin(process.argv));
