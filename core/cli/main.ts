#!/usr/bin/env node
// The `gatehouse` command: start, validate, secret resolve, new plugin|provider, init.
// Gatehouse supports Node 20 on purpose; the AWS SDK's end-of-support notice is noise in its logs
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { Command } from 'commander';
import { startCommand } from './start';
import { validateCommand } from './validate';
import { packageName, version } from '../version';
import { secretResolveCommand } from './secret';
import { newCommand } from './new';
import { initCommand } from './init';

/** Every command that reads a config reads this one unless -c names another (in the working directory). */
const DEFAULT_CONFIG = 'gatehouse.yaml';

const program = new Command();
program.name('gatehouse').description('API gateway whose config holds secret references, never secrets').version(version);

program
  .command('start')
  .description('run the gateway')
  .option('-c, --config <file>', 'configuration file', DEFAULT_CONFIG)
  .action(async (o: { config: string }) => {
    process.exit(await startCommand(o.config));
  });

program
  .command('validate')
  .description('check a configuration file; exit 1 listing every error with its path')
  .option('-c, --config <file>', 'configuration file', DEFAULT_CONFIG)
  .action(async (o: { config: string }) => {
    process.exitCode = await validateCommand(o.config, process.stdout, process.stderr);
  });

const secret = program.command('secret').description('work with secret references');
secret
  .command('resolve')
  .description('resolve one reference; print provider, latency and a sha256 fingerprint (the value only with --reveal)')
  .argument('<ref>', 'a reference: $secret://<manager>/<id>/<path>/<field> or $env://NAME')
  .option('-c, --config <file>', 'configuration file holding the secret resources (an $env:// reference needs none)', DEFAULT_CONFIG)
  .option('--reveal', 'also print the value')
  .action(async (ref: string, o: { config: string; reveal?: boolean }, cmd: Command) => {
    // the default file may be absent for an $env:// reference; a file named with -c must exist
    const optional = cmd.getOptionValueSource('config') === 'default';
    process.exit(await secretResolveCommand(ref, o.config, o.reveal === true, process.stdout, process.stderr, optional));
  });

const scaffold = program.command('new').description('scaffold a plugin or a secret provider from templates/');
for (const kind of ['plugin', 'provider'] as const) {
  scaffold
    .command(kind)
    .description(`a working ${kind} with its schema, test and README; in a project (a folder with gatehouse.yaml) it goes to ${kind}s/<name> and is registered in gatehouse.yaml`)
    .argument('<name>', 'lowercase letters, digits and dashes, starting with a letter')
    .option('--dir <dir>', 'where to create it', '.')
    .action((name: string, o: { dir: string }) => {
      process.exitCode = newCommand(kind, name, { dir: o.dir }, process.stdout, process.stderr);
    });
}

program
  .command('init')
  .description('a new gateway project that depends on this Gatehouse, with its own plugins/, providers/, config and tests')
  .argument('<dir>', 'the project folder (must not exist, or be empty); its name becomes the package name')
  .option('--port <port>', 'port of gateway.listen on 127.0.0.1 (default 9080)')
  .option('--link', `depend on this installation's folder (file:) instead of ${packageName}@^${version} from the registry; for developing Gatehouse itself`)
  .action((dir: string, o: { port?: string; link?: boolean }) => {
    process.exitCode = initCommand(dir, { port: o.port, link: o.link === true }, process.stdout, process.stderr);
  });

program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`gatehouse: ${err.message}\n`);
  process.exit(1);
});
