// Carrying a caller's deadline (an AbortSignal) into client-node's calls. Its generated APIs take
// per-call ConfigurationOptions whose middleware may change the request before it is sent
// (@kubernetes/client-node gen/types/ObservableAPI: each middleware's pre runs on the
// RequestContext), and its fetch passes RequestContext.getSignal() on (gen/http/isomorphic-fetch).
import { Observable, type ConfigurationOptions } from '@kubernetes/client-node';

/** Per-call options that abort the request with the signal; undefined without one (the API client's defaults). */
export function abortOptions(signal: AbortSignal | undefined): ConfigurationOptions | undefined {
  if (!signal) return undefined;
  return {
    middleware: [
      {
        pre: (ctx) => {
          ctx.setSignal(signal);
          return new Observable(Promise.resolve(ctx));
        },
        post: (rsp) => new Observable(Promise.resolve(rsp)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}
