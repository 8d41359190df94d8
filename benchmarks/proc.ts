// What a server process costs, read from /proc: resident memory and CPU time. Linux only, which
// is where the extender runs; elsewhere the figures read as NaN rather than failing the run.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

export interface MemoryStatus {
  /** VmRSS: resident set size now, bytes. */
  rss: number;
  /** VmHWM: the highest resident set size since start (or since resetPeakRss), bytes. */
  peak: number;
}

function kbField(status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

export function readMemory(pid: number): MemoryStatus {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { rss: kbField(status, 'VmRSS'), peak: kbField(status, 'VmHWM') };
  } catch {
    return { rss: Number.NaN, peak: Number.NaN };
  }
}

/**
 * Resets VmHWM to the current RSS (clear_refs "5", Linux >= 4.0), so that the next reading of
 * the peak covers one measurement only. False when the kernel or permissions do not allow it.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

let clockTicks: number | undefined;

function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User plus system CPU time the process has used, seconds. */
export function readCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the state field.
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return Number.NaN;
  }
}

export interface ProbeReading {
  rssBefore: number;
  rssAfter: number;
  /** Highest RSS seen during the probe: VmHWM when it could be reset, else sampled. */
  rssPeak: number;
  /** CPU used between measureStart and measureEnd, in cores (1 = one core busy). */
  cpuCores: number;
}

/** Watches one process over one measurement: memory before, after and at its peak, and CPU. */
export class ProcessProbe {
  private timer: NodeJS.Timeout | undefined;
  private rssBefore = Number.NaN;
  private sampledPeak = 0;
  private hwmReset = false;
  private cpuStart = Number.NaN;
  private cpuEnd = Number.NaN;
  private wallStart = 0;
  private wallEnd = 0;

  constructor(
    readonly pid: number,
    private readonly sampleMs = 50,
  ) {}

  begin(): void {
    this.hwmReset = resetPeakRss(this.pid);
    this.rssBefore = readMemory(this.pid).rss;
    this.sampledPeak = this.rssBefore;
    this.timer = setInterval(() => {
      this.sampledPeak = Math.max(this.sampledPeak, readMemory(this.pid).rss);
    }, this.sampleMs);
  }

  measureStart(): void {
    this.cpuStart = readCpuSeconds(this.pid);
    this.wallStart = performance.now();
  }

  measureEnd(): void {
    this.cpuEnd = readCpuSeconds(this.pid);
    this.wallEnd = performance.now();
  }

  end(): ProbeReading {
    clearInterval(this.timer);
    const now = readMemory(this.pid);
    const peak = Math.max(this.sampledPeak, now.rss, this.hwmReset ? now.peak : 0);
    const wall = (this.wallEnd - this.wallStart) / 1000;
    return {
      rssBefore: this.rssBefore,
      rssAfter: now.rss,
      rssPeak: peak,
      cpuCores: (this.cpuEnd - this.cpuStart) / wall,
    };
  }
}
