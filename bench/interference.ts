// How much CPU the rest of the machine used while a bench ran: a run that shared its cores with a build or a
// test suite is noisy, and the report should say so. Linux only (/proc); elsewhere the figures are null.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

/** What other processes cost while a bench ran. */
export interface Interference {
  wallS: number;
  /** CPU seconds used by processes other than the runner and its servers. */
  otherCpuS: number;
  /** otherCpuS over all cores' time: 0 is a quiet machine, 0.05 already shows in the spread. */
  otherShare: number;
  /** CPU seconds the hypervisor gave to other guests (steal). */
  stealS: number;
}

interface Snapshot {
  at: number;
  busyTicks: number;
  stealTicks: number;
  ownCpuS: number;
}

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const value = Number(out.stdout?.trim());
    ticksPerSecond = out.status === 0 && value > 0 ? value : 100;
  }
  return ticksPerSecond;
}

/** user nice system idle iowait irq softirq steal ... from the first line of /proc/stat. */
function machineTicks(): { busy: number; steal: number } | null {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = fields;
    return { busy: user + nice + system + irq + softirq, steal: steal ?? 0 };
  } catch {
    return null;
  }
}

/** utime + stime of one process, in seconds; 0 once it is gone. */
function processCpuS(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; fields after its closing parenthesis are fixed.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / clockTicks();
  } catch {
    return 0;
  }
}

/** Starts accounting; `stop()` must be called while the server processes are still running. */
export function startInterferenceMeter(serverPids: () => number[]): { stop(): Interference | null } {
  const take = (): Snapshot | null => {
    const ticks = machineTicks();
    if (!ticks) return null;
    const self = process.cpuUsage();
    const servers = serverPids().reduce((sum, pid) => sum + processCpuS(pid), 0);
    return {
      at: performance.now(),
      busyTicks: ticks.busy,
      stealTicks: ticks.steal,
      ownCpuS: (self.user + self.system) / 1e6 + servers,
    };
  };
  const start = take();
  return {
    stop(): Interference | null {
      const end = take();
      if (!start || !end) return null;
      const wallS = (end.at - start.at) / 1000;
      const busyS = (end.busyTicks - start.busyTicks) / clockTicks();
      // Tick accounting is coarse (10 ms); never report a negative share.
      const otherCpuS = Math.max(0, busyS - (end.ownCpuS - start.ownCpuS));
      return {
        wallS,
        otherCpuS,
        otherShare: otherCpuS / (wallS * os.cpus().length),
        stealS: (end.stealTicks - start.stealTicks) / clockTicks(),
      };
    },
  };
}
