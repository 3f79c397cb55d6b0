// `gatehouse init <dir>`: a new gateway project from templates/project — package.json depending on
// this Gatehouse's package by a semver range of the running version (or, with --link, on this
// installation's folder), gatehouse.yaml with a demo route, plugins/, providers/, a test — ready for
// `npm install && npm test && npm start`.
import { basename, resolve } from 'node:path';
import { EXTENSION_NAME } from '../sdk';
import { nodeEngine, packageName, version } from '../version';
import { checkName, checkTarget, display, PACKAGE_ROOT, renderTemplate, ScaffoldError, writeFiles } from './new';

/** The gateway port of a new project unless `--port` says otherwise. */
export const DEFAULT_PORT = 9080;

export interface InitOptions {
  /** Port of `gateway.listen` (127.0.0.1); default 9080. */
  readonly port?: string;
  /**
   * Depend on this installation's folder (`file:<path>`) instead of `^<version>` from the registry:
   * for people who develop Gatehouse itself, or try a checkout. The project then builds only
   * where that folder is.
   */
  readonly link?: boolean;
}

/**
 * `gatehouse init <dir>`. The folder's name becomes the package name. `dir` must not exist or
 * be an empty folder.
 * @returns the exit code: 0, or 1 after one error line on `err`
 */
export function initCommand(dir: string, opts: InitOptions, out: NodeJS.WritableStream, err: NodeJS.WritableStream): number {
  try {
    const target = resolve(dir);
    const name = basename(target);
    if (!EXTENSION_NAME.test(name)) {
      throw new ScaffoldError(`invalid project folder name ${JSON.stringify(name)}: it becomes the package name, so use lowercase letters, digits and dashes, starting with a letter`);
    }
    checkName(name, 'project');
    const portText = opts.port ?? String(DEFAULT_PORT);
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
      throw new ScaffoldError(`invalid --port ${JSON.stringify(opts.port)}: a port number from 1 to 65535`);
    }
    checkTarget(target);
    const files = renderTemplate('project', name, target, (rel, content) => {
      let text = content.replaceAll(`127.0.0.1:${DEFAULT_PORT}`, `127.0.0.1:${port}`);
      if (rel === 'package.json') {
        const pkg = JSON.parse(text) as { dependencies: Record<string, string>; engines?: Record<string, string> };
        // a caret range of the running version: extensions' `gatehouse:` ranges are written the same way
        pkg.dependencies[packageName] = opts.link === true ? `file:${PACKAGE_ROOT}` : `^${version}`;
        if (nodeEngine !== undefined) pkg.engines = { ...pkg.engines, node: nodeEngine };
        text = `${JSON.stringify(pkg, null, 2)}\n`;
      }
      return text;
    });
    writeFiles(files, out);
    const cd = display(target);
    out.write(
      [
        '',
        'next:',
        ...(cd === '.' ? [] : [`  cd ${cd}`]),
        '  npm install',
        '  npm test                          # builds, then runs the tests',
        `  npm start                         # the gateway on http://127.0.0.1:${port}/`,
        '  npx gatehouse new plugin <name>   # a plugin in plugins/, registered in gatehouse.yaml',
        '',
      ].join('\n'),
    );
    return 0;
  } catch (e) {
    if (!(e instanceof ScaffoldError)) throw e;
    err.write(`gatehouse: ${e.message}\n`);
    return 1;
  }
}

