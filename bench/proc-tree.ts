// A process and its descendants (gateway workers, nginx workers), from /proc: RSS and CPU time. Linux only.
import { readdirSync, readFileSync } from 'node:fs';

// USER_HZ is 100 on every mainstream Linux build
const CLOCK_TICKS = 100;

interface Stat {
  readonly ppid: number;
  readonly cpuS: number;
}

function stat(pid: number): Stat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the ")" that closes the command name: ppid is the 2nd, utime the 12th, stime the 13th
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpuS: (Number(f[11]) + Number(f[12])) / CLOCK_TICKS };
  } catch {
    return undefined;
  }
}

/** `pid` and every live descendant of it. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [pid];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const s = stat(Number(e));
    if (!s) continue;
    let list = children.get(s.ppid);
    if (!list) children.set(s.ppid, (list = []));
    list.push(Number(e));
  }
  const out: number[] = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/** Resident memory of one process in MB (VmRSS), or 0 when it is gone. */
export function rssMb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** RSS of `pid` and its descendants, in MB, with how many processes that is. */
export function treeRss(pid: number): { mb: number; processes: number } {
  const pids = processTree(pid);
  return { mb: pids.reduce((a, p) => a + rssMb(p), 0), processes: pids.length };
}

/** CPU seconds (user + system) used so far by `pid` and its live descendants; undefined off Linux. */
export function treeCpuSeconds(pid: number): number | undefined {
  const s = stat(pid);
  if (!s) return undefined;
  return processTree(pid).reduce((a, p) => a + (stat(p)?.cpuS ?? 0), 0);
}

/** The busy CPU seconds of the whole machine (/proc/stat), to see load from outside the bench. */
export function machineBusySeconds(): number | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy
    return (f.slice(0, 8).reduce((a, b) => a + b, 0) - f[3] - f[4]) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds of this process's children that have ended and been waited for (cutime + cstime of
 * /proc/self/stat): after a wrk run ends, the growth of this is wrk's CPU. Undefined off Linux.
 */
export function endedChildrenCpuSeconds(): number | undefined {
  try {
    const s = readFileSync('/proc/self/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[13]) + Number(f[14])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
