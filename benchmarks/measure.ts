// One measurement: a load on one verb of one server process, with what it cost the server.
import { runLoad, type LoadOptions, type LoadResult } from './load.js';
import { ProcessProbe, type ProbeReading } from './proc.js';
import type { ServerProcess } from './servers.js';

export interface Measurement {
  server: string;
  verb: string;
  bodyBytes: number;
  load: LoadResult;
  proc: ProbeReading;
}

export type MeasureOptions = Omit<LoadOptions, 'url' | 'body' | 'onMeasureStart' | 'onMeasureEnd'>;

export async function measure(
  server: ServerProcess,
  verb: string,
  body: Buffer,
  options: MeasureOptions,
): Promise<Measurement> {
  const probe = new ProcessProbe(server.pid);
  probe.begin();
  let load: LoadResult;
  try {
    load = await runLoad({
      ...options,
      url: `${server.url}/${verb}`,
      body,
      onMeasureStart: () => probe.measureStart(),
      onMeasureEnd: () => probe.measureEnd(),
    });
  } catch (e) {
    probe.end();
    throw e;
  }
  return { server: server.name, verb, bodyBytes: body.length, load, proc: probe.end() };
}
