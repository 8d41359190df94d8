// The yardstick of the issue: the least a Node.js extender can do for filter with NodeNames.
// node:http, read the body, JSON.parse it, answer {"NodeNames": <names>} with JSON.stringify.
// Usage: node dist/benchmarks/bareServer.js PORT
import http from 'node:http';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: bareServer.js PORT\n');
  process.exit(2);
}

const server = http.createServer((req, res) => {
  // Only for the benchmark to see that the server is up.
  if (req.method !== 'POST') {
    res.end('ok');
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let names: unknown;
    try {
      names = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { NodeNames?: unknown }).NodeNames;
    } catch {
      res.statusCode = 400;
      res.end();
      return;
    }
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ NodeNames: names }));
  });
});
// The same keep-alive settings as the extender (src/extender.ts), so both keep their connections.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)).closeIdleConnections());
