// Runs one non-Node program (nginx) for the bench: `node exec-guard.js <command> [args…]`. Reports the
// program's pid over IPC, passes SIGTERM/SIGINT on, exits with it, and stops it when the bench's IPC
// channel closes (the bench died, even by SIGKILL), so the program never outlives the bench.
import { spawn } from 'node:child_process';
import { processTree } from './proc-tree';

const GRACE_MS = 3000;

function main(): void {
  const [command, ...args] = process.argv.slice(2);
  const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  child.once('spawn', () => process.send?.({ pid: child.pid }));
  child.once('error', (err) => {
    process.send?.({ error: `${command}: ${err.message}` });
    process.exit(127);
  });
  child.once('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
  let stopping = false;
  function stopChild(): void {
    if (stopping) return;
    stopping = true;
    // the program's own graceful stop first; its whole tree (nginx workers too) by force if it hangs
    const tree = processTree(child.pid!);
    child.kill('SIGTERM');
    setTimeout(() => {
      for (const pid of tree) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      process.exit(1);
    }, GRACE_MS).unref();
  }
  process.on('SIGTERM', stopChild);
  process.on('SIGINT', stopChild);
  process.on('disconnect', stopChild);
}

main();
