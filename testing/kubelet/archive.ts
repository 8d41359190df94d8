// The container checkpoint archive the simulated kubelet writes, laid out as CRI-O writes it
// (cri-o internal/lib/checkpoint.go exportCheckpoint: an uncompressed tar of the container's
// checkpoint directory), so that checkpointctl reads it and the node agent publishes what it would
// publish on a real node:
//   config.dump      checkpointctl lib.ContainerConfig (id, name, rootfsImage*, runtime, times)
//   spec.dump        the OCI runtime spec, with the annotations CRI-O sets (io.container.manager,
//                    io.kubernetes.cri-o.Metadata, pod name/namespace/uid, ...): checkpointctl's
//                    getCRIOInfo and CRI-O's CRImportCheckpoint read them
//   dump.log, stats-dump   CRIU's log and dump statistics
//   checkpoint/      CRIU image files: inventory, pstree, core, mm, pagemap, pages (the memory)
//   rootfs-diff.tar  the container's writable-layer changes (an empty tar here)
// The CRIU images carry their magic numbers but not real protobuf bodies: checkpointctl show
// only sizes them; inspect would need a real dump.
import { createHash } from 'node:crypto';
import { constants as fsConstants, promises as fsp } from 'node:fs';

export interface ArchiveInfo {
  namespace: string;
  pod: string;
  podUid: string;
  container: string;
  containerId: string;
  /** The container's image as the pod spec names it, and the digest it resolved to. */
  image?: string;
  imageRef?: string;
  checkpointedAt: Date;
  /** Size of checkpoint/pages-1.img (the dumped memory); default 16 KiB. */
  pagesBytes?: number;
  /**
   * The simulated process's work counter (progress.ts), which a real dump holds in the process's
   * memory: written as PROGRESS_ENTRY when given, so that a restore can resume from it.
   */
  progress?: number;
}

/** The archive entry holding ArchiveInfo.progress: not part of CRI-O's layout, the simulator's own. */
export const PROGRESS_ENTRY = 'hiatus-simulator-progress.json';

interface Entry {
  name: string;
  /** undefined for a directory. */
  size?: number;
  /** Body generator: small bodies are one buffer; pages are written in pieces. */
  body?: Buffer | ((write: (b: Buffer) => Promise<void>) => Promise<void>);
}

// CRIU image magics (criu/include/magic.h): IMG_COMMON_MAGIC / IMG_SERVICE_MAGIC then the image's own.
const MAGIC: Record<string, number[]> = {
  'inventory.img': [0x58313116, 0x58313116],
  'pstree.img': [0x54564319, 0x50273030],
  'core-1.img': [0x54564319, 0x55053847],
  'mm-1.img': [0x54564319, 0x57492820],
  'pagemap-1.img': [0x54564319, 0x56084025],
  'cpuinfo.img': [0x54564319, 0x61404013],
};
const PAGE = 4096;
const DEFAULT_PAGES_BYTES = 4 * PAGE;
const PIECE = 1 << 20;

function criuImage(name: string): Buffer {
  const [a, b] = MAGIC[name]!;
  const buf = Buffer.alloc(64);
  buf.writeUInt32LE(a!, 0);
  buf.writeUInt32LE(b!, 4);
  return buf;
}

/** A deterministic byte stream per archive, so that two archives never share a digest. */
function pagesWriter(seed: string, total: number): (write: (b: Buffer) => Promise<void>) => Promise<void> {
  return async (write) => {
    // One random-looking block, varied per piece by its index: fast to make, distinct per archive.
    const block = Buffer.alloc(Math.min(PIECE, Math.max(total, 1)));
    let h = createHash('sha256').update(seed).digest();
    for (let off = 0; off < block.length; off += h.length) {
      h.copy(block, off);
      h = createHash('sha256').update(h).digest();
    }
    let written = 0;
    let i = 0;
    while (written < total) {
      const n = Math.min(block.length, total - written);
      block.writeUInt32LE(i++, 0);
      await write(n === block.length ? block : block.subarray(0, n));
      written += n;
    }
  };
}

export function archiveEntries(info: ArchiveInfo): Entry[] {
  const created = new Date(info.checkpointedAt.getTime() - 60_000);
  const criName = `k8s_${info.container}_${info.pod}_${info.namespace}_${info.podUid}_0`;
  const config = {
    id: info.containerId,
    name: criName,
    rootfsImage: info.image ?? '',
    rootfsImageRef: info.imageRef ?? '',
    rootfsImageName: info.image ?? '',
    runtime: 'runc',
    createdTime: created.toISOString(),
    checkpointedTime: info.checkpointedAt.toISOString(),
    restoredTime: '0001-01-01T00:00:00Z',
    restored: false,
  };
  const labels = {
    'io.kubernetes.container.name': info.container,
    'io.kubernetes.pod.name': info.pod,
    'io.kubernetes.pod.namespace': info.namespace,
    'io.kubernetes.pod.uid': info.podUid,
  };
  const spec = {
    ociVersion: '1.2.0',
    process: {
      user: { uid: 0, gid: 0 },
      args: ['/app'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      cwd: '/',
    },
    root: { path: `/var/lib/containers/storage/overlay/${info.containerId}/merged` },
    hostname: info.pod,
    annotations: {
      'io.container.manager': 'cri-o',
      'io.kubernetes.cri-o.Metadata': JSON.stringify({ name: info.container }),
      'io.kubernetes.cri-o.Created': created.toISOString(),
      'io.kubernetes.cri-o.ContainerID': info.containerId,
      'io.kubernetes.cri-o.ContainerType': 'container',
      'io.kubernetes.cri-o.Name': criName,
      'io.kubernetes.cri-o.Image': info.imageRef ?? '',
      'io.kubernetes.cri-o.ImageName': info.image ?? '',
      'io.kubernetes.cri-o.IP.0': '10.85.0.12',
      'io.kubernetes.cri-o.Labels': JSON.stringify(labels),
      'io.kubernetes.cri-o.Annotations': JSON.stringify({
        'io.kubernetes.container.hash': '1f2e3d4c',
        'io.kubernetes.pod.uid': info.podUid,
      }),
      'io.kubernetes.cri-o.Volumes': '[]',
      ...labels,
    },
    linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }] },
  };
  const pagesBytes = info.pagesBytes ?? DEFAULT_PAGES_BYTES;
  const images = ['inventory.img', 'pstree.img', 'core-1.img', 'mm-1.img', 'pagemap-1.img', 'cpuinfo.img'];
  return [
    { name: 'config.dump', body: Buffer.from(JSON.stringify(config, null, 2)) },
    { name: 'spec.dump', body: Buffer.from(JSON.stringify(spec, null, 2)) },
    {
      name: 'dump.log',
      body: Buffer.from(`(00.000000) Version: 4.1 (gitid 0)\n(00.010000) Dumping finished successfully\n`),
    },
    { name: 'stats-dump', body: Buffer.from([0x54, 0x56, 0x43, 0x19, 0x57, 0x64, 0x83, 0x37, 0, 0, 0, 0]) },
    { name: 'checkpoint/' },
    ...images.map((n): Entry => ({ name: `checkpoint/${n}`, body: criuImage(n) })),
    {
      name: 'checkpoint/pages-1.img',
      size: pagesBytes,
      body: pagesWriter(`${info.containerId}/${info.checkpointedAt.toISOString()}`, pagesBytes),
    },
    { name: 'rootfs-diff.tar', body: Buffer.alloc(1024) },
    ...(info.progress !== undefined
      ? [{ name: PROGRESS_ENTRY, body: Buffer.from(JSON.stringify({ units: info.progress })) }]
      : []),
  ];
}

export function tarHeader(name: string, size: number | undefined, mtime: number): Buffer {
  const header = Buffer.alloc(512);
  const octal = (offset: number, width: number, value: number) =>
    header.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'latin1');
  const dir = size === undefined;
  header.write(name, 0, 100, 'utf8');
  octal(100, 8, dir ? 0o700 : 0o600);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size ?? 0);
  octal(136, 12, mtime);
  header.fill(0x20, 148, 156);
  header.write(dir ? '5' : '0', 156, 'latin1');
  header.write('ustar\u000000', 257, 'latin1');
  header.write('root', 265, 'latin1');
  header.write('root', 297, 'latin1');
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return header;
}

/**
 * Writes the archive as CRI-O does: opened O_RDWR|O_CREATE 0600 without O_TRUNC (a same-second
 * name collision overwrites in place), written front to back in pieces, so that a 1 GiB archive
 * costs no more memory than a small one. Returns its size.
 */
export async function writeCheckpointArchive(file: string, info: ArchiveInfo): Promise<number> {
  const mtime = Math.floor(info.checkpointedAt.getTime() / 1000);
  const fh = await fsp.open(file, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
  let pos = 0;
  const write = async (b: Buffer) => {
    let off = 0;
    while (off < b.length) {
      const { bytesWritten } = await fh.write(b, off, b.length - off, pos);
      off += bytesWritten;
      pos += bytesWritten;
    }
  };
  try {
    for (const e of archiveEntries(info)) {
      const size = e.body === undefined ? undefined : Buffer.isBuffer(e.body) ? e.body.length : e.size!;
      await write(tarHeader(e.name, size, mtime));
      if (e.body === undefined) continue;
      if (Buffer.isBuffer(e.body)) await write(e.body);
      else await e.body(write);
      const pad = (512 - (size! % 512)) % 512;
      if (pad) await write(Buffer.alloc(pad));
    }
    await write(Buffer.alloc(1024));
  } finally {
    await fh.close();
  }
  return pos;
}
