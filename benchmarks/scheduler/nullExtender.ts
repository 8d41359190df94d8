// The least an extender can be, as a yardstick between "no extender" and hiatus: node:http,
// JSON.parse of the body, filter echoes NodeNames, prioritize answers []. No cluster watches.
// Usage: node dist/benchmarks/scheduler/nullExtender.js PORT
import http from 'node:http';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: nullExtender.js PORT\n');
  process.exit(2);
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST') {
    res.end('ok');
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let args: { NodeNames?: string[] | null };
    try {
      args = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof args;
    } catch {
      res.statusCode = 400;
      res.end();
      return;
    }
    res.setHeader('Content-Type', 'application/json');
    if (req.url === '/filter') {
      res.end(
        JSON.stringify({
          Nodes: null,
          NodeNames: args.NodeNames ?? [],
          FailedNodes: null,
          FailedAndUnresolvableNodes: null,
          Error: '',
        }),
      );
    } else {
      res.end('[]');
    }
  });
});
// As the extender (src/extender.ts): kube-scheduler keeps its connections for 90 s.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)).closeIdleConnections());
