/** @file CPU time from /proc: of one process, of the whole machine, and of a named set of processes at once. */
import fs from 'node:fs';

/** User + system CPU seconds of a process so far (/proc/<pid>/stat, in clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Busy CPU seconds of the whole machine so far (/proc/stat: all but idle and iowait). */
export function machineBusySeconds(): number {
  const [, ...ticks] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = ticks as number[];
  return (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / 100;
}

/** CPU seconds so far of each named process, of the machine (`machine`) and of this process (`load`). */
export function cpuOf(pids: Record<string, number>): Record<string, number> {
  const own = process.cpuUsage();
  const out: Record<string, number> = { machine: machineBusySeconds(), load: own.user / 1e6 + own.system / 1e6 };
  for (const [name, pid] of Object.entries(pids)) {
    try {
      out[name] = cpuSeconds(pid);
    } catch {
      out[name] = NaN; // gone
    }
  }
  return out;
}
